"""What runs lab5: from the command line to a run folder, and the process that records it.

main.py       a run: flags -> data -> the recorder beside -> lab5's loop -> summary, exit status
flags.py      every flag, a typed field of Flags; a command line parsed once into a config
presets.py    the recipes --preset names
cli.py        the strict parser every command uses, and the readers of flags' values
ensemble.py   a config's members (--seeds, --vary), their names, their schedules
settings.py   a run's settings in words and names: changed flags, own defaults, folder name
hardware.py   where a run trains and whether its step compiles, from what PyTorch reports
run.py        Run: what both processes know of a run
run_folder.py the one module that reads and writes a run folder (plots/ reads through it)
recorder.py   each epoch's snapshot -> metrics rows, frames, parameters, summaries, checkpoint
evaluation.py W1, energy distance, precision/recall, mode metrics, the noise floor
worker.py     the recording process and its bounded queue
endings.py    how a run is told to stop: Ctrl-C, SIGTERM, Ctrl-Break, its driver gone
console.py    the progress bar and the lines a run prints
"""
