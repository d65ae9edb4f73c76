"""``python -m ctkd_inspect.train --config run.yaml [--key value ...]``: the ``ctkd-inspect distill`` command, as a
module that ``accelerate launch -m ctkd_inspect.train ...`` can start on every process."""

from ..cli.distill import distill_command

if __name__ == "__main__":
    distill_command(prog_name="python -m ctkd_inspect.train")
