"""Fake SLURM commands for tests: shell scripts put on PATH (no cluster needed).

- ``scontrol``: logs its arguments to ``$FAKE_SCONTROL_LOG``; ``scontrol show
  hostnames LIST`` prints ``$FAKE_SLURM_HOSTS`` one per line (the test says which
  hosts LIST means); ``scontrol requeue ID`` only logs.
- ``sbatch``: copies the submitted script to ``$FAKE_SBATCH_DIR`` (numbered) and
  answers ``Submitted batch job $FAKE_SBATCH_JOB_ID``.
- ``srun``: present so that submitit detects SLURM; exits 1 if ever called.
"""

import os
import stat

SCRIPTS = {
    "scontrol": """#!/bin/sh
echo "$@" >> "$FAKE_SCONTROL_LOG"
if [ "$1" = show ] && [ "$2" = hostnames ]; then
  for host in $FAKE_SLURM_HOSTS; do echo "$host"; done
fi
""",
    "sbatch": """#!/bin/sh
count=$(ls "$FAKE_SBATCH_DIR" | wc -l)
cp "$1" "$FAKE_SBATCH_DIR/submission_$count.sh"
echo "Submitted batch job $FAKE_SBATCH_JOB_ID"
""",
    "srun": """#!/bin/sh
exit 1
""",
}


def install(folder, names=("scontrol", "sbatch", "srun")) -> str:
    """Writes the fake commands ``names`` into ``folder``; returns the folder."""
    os.makedirs(folder, exist_ok=True)
    for name in names:
        path = os.path.join(folder, name)
        with open(path, "w") as f:
            f.write(SCRIPTS[name])
        os.chmod(path, os.stat(path).st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return str(folder)
