"""What a run writes, and the process that writes it beside training.

run.py        Run: what both processes know of a run
recorder.py   each epoch's snapshot -> metrics rows, frames, parameters, summaries, checkpoint
metrics.py    W1, energy distance, precision/recall, mode metrics, the noise floor, mean ± s.e.
folder.py     the run folder: a new one never over another run, config.json, --resume's rewind
checkpoint.py the torch files: the parameters, and checkpoint.pt written and read back
files.py      whole-file and row-at-a-time writes, and the readers (plots/ reads through them)
worker.py     the recording process and its bounded queue; Ctrl-C held while an epoch is handed
console.py    the progress bar and the lines a run prints
"""
