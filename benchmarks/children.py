"""Child processes of the benchmarks: this package's modules run as `python -m`.

The original SimCLR's `tf2/` is a folder of flat modules (`data_util`,
`model`, `objective`, `run`, ...), which benchmarks that time it side by side
import only in a child started with `original=` (a checkout of
github.com/google-research/simclr): its PYTHONPATH leads with the original's
`tf2/`, then this repository. The child runs with `-P`, which keeps the
working directory off its path, so that `run` is the original's module and
not this repository's `run.py`.
"""
import json
import os
import shutil
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def command(module, args, original=None):
  """argv of `python -m module args` (with `original`: `python -P -m ...`)."""
  return [sys.executable] + (['-P'] if original else []) + ['-m', module] + list(args)


def environment(original=None, **variables):
  """This process's environment plus `variables`; with `original`, a PYTHONPATH that
  leads with its tf2/ folder, then this repository."""
  env = dict(os.environ, **variables)
  if original:
    paths = [os.path.join(os.path.abspath(original), 'tf2'), ROOT]
    env['PYTHONPATH'] = os.pathsep.join(paths + [p for p in [env.get('PYTHONPATH')] if p])
  return env


def run_json(module, args, original=None, **variables):
  """Runs `python -m module args` from the repository root; returns its last line on
  stdout, read as JSON. A failure raises with the end of the child's stderr."""
  out = subprocess.run(command(module, args, original), cwd=ROOT, capture_output=True,
                       text=True, env=environment(original, **variables))
  if out.returncode:
    raise RuntimeError(f'{module} {" ".join(args)} failed (exit {out.returncode}):\n'
                       f'{out.stderr[-2000:]}')
  return json.loads(out.stdout.strip().splitlines()[-1])


def start(module, args, original=None, **variables):
  """`python -m module args` started with pipes to its stdin and stdout (text, lines)."""
  return subprocess.Popen(command(module, args, original), cwd=ROOT, text=True, bufsize=1,
                          stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                          env=environment(original, **variables))


def run_py(model_dir, flags):
  """One `run.py` process on `flags` (run.py's, `--model_dir` included) in a fresh
  `model_dir`; returns (its result.json, wall seconds). A failure raises with the end
  of its stderr."""
  shutil.rmtree(model_dir, ignore_errors=True)
  start_time = time.time()
  out = subprocess.run([sys.executable, os.path.join(ROOT, 'run.py')] + list(flags), cwd=ROOT,
                       capture_output=True, text=True)
  seconds = time.time() - start_time
  if out.returncode:
    raise RuntimeError(f'run.py failed (exit {out.returncode}):\n{out.stderr[-3000:]}')
  with open(os.path.join(model_dir, 'result.json')) as f:
    return json.load(f), seconds
