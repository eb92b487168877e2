"""The recording process: a worker beside the one that trains, fed through a bounded queue.

The worker starts by whatever method multiprocessing is set to (fork, forkserver or spawn: the
platform's default, or the program's multiprocessing.set_start_method). It never outlives the
process that trains, however that one ends: it holds no copy of the sender's end of its inbox,
so a sender killed in the middle of a message leaves it an end of file, not a read that waits
for ever; and every wait of its own is at most WAIT_S long, after which it looks whether the
sender is still alive.
"""

from __future__ import annotations

import multiprocessing
import queue
import threading
from dataclasses import dataclass
from functools import partial
from multiprocessing.connection import Connection
from typing import Callable, NamedTuple

from harness.endings import ignore_stop_signals, interrupts_ignored

QUEUE_SIZE = 8  # messages waiting for the worker before the sender waits for it
WAIT_S = 1.0  # the longest either process waits before it looks whether the other is alive


class WorkerStopped(RuntimeError):
    """The worker process died (a bug); its own error is printed above."""


def sender_alive() -> bool:
    parent = multiprocessing.parent_process()
    return parent is None or parent.is_alive()


def receive(inbox):
    """A worker's next message; if the process that sends them is gone (killed), the worker ends
    rather than wait for ever, and writes nothing more."""
    while not inbox.poll(WAIT_S):
        if not sender_alive():
            raise SystemExit("the training process is gone")
    try:
        return inbox.recv()
    except EOFError:  # the sender died, perhaps in the middle of this message
        raise SystemExit("the training process is gone") from None


def serve(start: Callable[[], object], handle: Callable, inbox, outbox, inherited) -> None:
    """A worker's loop: the state that start() makes, then each message handled, with the replies
    sent back, up to and including the last one (which has a "status"). What it cannot write (an
    OSError: a full disk, a folder gone) ends it, the error sent back for the sender to raise."""
    for end in inherited:  # a forked worker's copies of the sender's ends: see the module's doc
        end.close()
    ignore_stop_signals()  # the sender says when to stop; the worker finishes what it was given
    try:
        state = start()
        while True:
            message = receive(inbox)
            outbox.send(handle(state, message))
            if "status" in message:
                return
    except OSError as e:
        outbox.send(e)
    finally:
        outbox.close()


class Worker(NamedTuple):
    send: Callable[[dict], list]  # a message in; the replies that are ready so far out
    finish: Callable[[dict], list]  # the last message; returns once the worker has ended


@dataclass
class Link:
    """The sender's side of a worker: the process, the queue its feeder thread empties into
    the worker's pipe, the pipe of the worker's replies."""

    process: multiprocessing.Process
    outgoing: queue.Queue
    replies: Connection
    owed: int = 0  # messages sent that the worker has not replied to yet
    gone: bool = False  # the worker has ended (its end of the replies' pipe is closed)


def feed(outgoing: queue.Queue, inbox) -> None:
    """The sender's thread: each message, in order, into the worker's pipe (a message larger than
    the pipe waits there for the worker to read it, and training does not), until None."""
    try:
        while (message := outgoing.get()) is not None:
            inbox.send(message)
    except OSError:  # the worker is gone, and nothing will read the rest
        pass
    finally:
        inbox.close()


def replies(link: Link, wait_s: float = 0.0) -> list:
    """The replies there are, waiting up to wait_s for the first; one that is an exception (the
    worker could not write) is raised."""
    lines = []
    while not link.gone and link.replies.poll(wait_s):
        wait_s = 0.0
        try:
            reply = link.replies.recv()
        except EOFError:  # the worker has said all it had to say
            link.gone = True
            break
        link.owed -= 1
        if isinstance(reply, BaseException):
            raise reply
        lines += reply
    return lines


def hand_over(link: Link, message: dict) -> list:
    """The message put in once the worker owes fewer than QUEUE_SIZE replies, unless it has
    gone; the replies that came meanwhile."""
    lines = replies(link)
    while link.owed >= QUEUE_SIZE and not link.gone:
        lines += replies(link, WAIT_S)
    if not link.gone:
        link.outgoing.put(message)
        link.owed += 1
    return lines


def send(link: Link, message: dict) -> list:
    lines = hand_over(link, message)
    if link.gone:
        link.process.join(WAIT_S)
        raise WorkerStopped(f"exit code {link.process.exitcode}")
    return lines + replies(link)


def finish(link: Link, message: dict) -> list:
    """The last message; every reply, once the worker has ended."""
    lines = hand_over(link, message)
    while not link.gone and link.process.is_alive():
        lines += replies(link, WAIT_S)
    lines += replies(link)
    link.process.join()
    link.outgoing.put(None)  # the feeder ends (or has: the worker is gone)
    if link.process.exitcode:
        raise WorkerStopped(f"exit code {link.process.exitcode}")
    return lines


def start_worker(work: Callable) -> Worker:
    """Run work(inbox, outbox, inherited) in a process of its own (see serve), fed through a
    bounded queue: a slow worker holds the sender back (QUEUE_SIZE messages without a reply)
    rather than letting messages pile up. Its replies come back with the messages that follow,
    and all of them at finish."""
    context = multiprocessing.get_context()
    inbox_reader, inbox_writer = context.Pipe(duplex=False)
    outbox_reader, outbox_writer = context.Pipe(duplex=False)
    # only a forked child has copies of this process's ends; a spawned one gets what it is given
    inherited = (inbox_writer, outbox_reader) if context.get_start_method() == "fork" else ()
    process = context.Process(target=work, args=(inbox_reader, outbox_writer, inherited))
    with interrupts_ignored():
        process.start()
    inbox_reader.close()  # the worker's ends: once it is gone, its pipes say so
    outbox_writer.close()
    link = Link(process, queue.Queue(), outbox_reader)
    threading.Thread(target=feed, args=(link.outgoing, inbox_writer), daemon=True).start()
    return Worker(partial(send, link), partial(finish, link))
