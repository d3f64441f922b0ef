"""Run keystone-manage steps in one interpreter: ``python manage.py CONFIG 'db_sync' 'bootstrap --x y' ...``.

Runs with the Keystone virtualenv's Python (it imports keystone, not imagedata). Keystone takes
seconds to import; each step runs ``keystone-manage``'s own entry point (``keystone.cmd.cli.main``)
in a child forked after that import, so every step starts from fresh, unparsed configuration
and the import is paid once instead of once per step.
"""
import os
import shlex
import sys
import time

from keystone.cmd import cli


def run_step(config: str, step: str) -> int:
    """Fork, run one keystone-manage command in the child, return its exit code."""
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            cli.main(argv=["keystone-manage", "--config-file", config, *shlex.split(step)])
            code = 0
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 1
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status)


def main(argv) -> int:
    config, steps = argv[1], argv[2:]
    for step in steps:
        started = time.monotonic()
        code = run_step(config, step)
        print(f"keystone-manage {step.split()[0]}: exit {code} in {time.monotonic() - started:.1f}s", flush=True)
        if code != 0:
            return code
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
