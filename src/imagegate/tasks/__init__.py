"""The task state machine: submit, run, cancel, recover, and the views clients see."""
