"""The documented runs, defined once: the commands README.md and docs/ show, read from
the pages themselves, and the named recipes that benchmarks and tests start from.

A recipe is read from its one home, never copied:
- `cifar10_pretrain`, `cifar10_finetune`: the original README's CIFAR-10
  commands, the fenced block of docs/usage.md's section "CIFAR-10";
- `quickstart`: flagfiles/quickstart.cfg;
- `randbits`: flagfiles/randbits.cfg (benchmarks/randbits.py);
- `cifar10_convnet`: flagfiles/cifar10_convnet.cfg (digits on images, the loss
  variants).

    recipes.flags_of('cifar10_pretrain', train_batch_size=128)  # run.py's flags (a list)
    recipes.config('cifar10_pretrain', train_batch_size=128)    # a tf2.config.Config

`flags_of` puts each override in place of the recipe's flag (or appends it),
for a command line; `config` parses the recipe's flags with run.py's own
(`config_of`), then replaces the overrides' fields. So the command a reader
pastes is the command that is measured and tested.

The docs' commands: a page is named by its file (`README.md`, `usage.md` for
docs/usage.md) and a section by its heading's text; a section runs to the
next heading of the same or a higher level. Commands are the lines of its
shell blocks: fenced blocks without a language or marked sh/bash/shell
(```python is code, ```text output).
"""
import os
import re
import shlex

ROOT = os.path.dirname(os.path.abspath(__file__))
DOCS = os.path.join(ROOT, 'docs')

_HEADING = re.compile(r'^(#{1,6})\s+(.*?)\s*#*\s*$')
_FENCE = re.compile(r'^\s*(```+|~~~+)\s*([\w+-]*)')
_SHELL = ('', 'sh', 'bash', 'shell')


def path_of(page):
  """README.md at the root, any other page under docs/."""
  return os.path.join(ROOT, page) if page == 'README.md' else os.path.join(DOCS, page)


def pages():
  """README.md and every docs/*.md, as names path_of() takes."""
  return ['README.md'] + sorted(n for n in os.listdir(DOCS) if n.endswith('.md'))


def read(page):
  with open(path_of(page), encoding='utf-8') as f:
    return f.read()


def headings(text):
  """(level, title, line index) of every heading outside fenced blocks."""
  found, fenced = [], False
  for index, line in enumerate(text.splitlines()):
    if _FENCE.match(line):
      fenced = not fenced
      continue
    match = None if fenced else _HEADING.match(line)
    if match:
      found.append((len(match.group(1)), match.group(2), index))
  return found


def section(page, title):
  """Text of the section of `page` headed `title`, up to the next heading of its level."""
  text = read(page)
  lines = text.splitlines()
  marks = headings(text)
  for i, (level, name, start) in enumerate(marks):
    if name == title:
      end = next((line for lvl, _, line in marks[i + 1:] if lvl <= level), len(lines))
      return '\n'.join(lines[start + 1:end]) + '\n'
  raise KeyError(f'{page} has no section {title!r}; its headings: {[m[1] for m in marks]}')


def blocks(text):
  """(language, body) of every fenced block of `text`, in order."""
  found, language, body = [], None, None
  for line in text.splitlines():
    match = _FENCE.match(line)
    if match and body is None:
      language, body = match.group(2).lower(), []
    elif match:
      found.append((language, '\n'.join(body)))
      body = None
    elif body is not None:
      body.append(line)
  return found


def shell_lines(text):
  """Command lines of the shell blocks: continuations joined, comment lines dropped."""
  lines = []
  for language, body in blocks(text):
    if language not in _SHELL:
      continue
    pending = ''
    for line in body.splitlines():
      if line.rstrip().endswith('\\'):
        pending += line.rstrip()[:-1] + ' '
        continue
      line = (pending + line).strip()
      pending = ''
      if line and not line.startswith('#'):
        lines.append(line)
  return lines


def run_commands(text):
  """The lines that start run.py (`python run.py ...`, maybe after `VAR=value` or `&&`)."""
  return [line for line in shell_lines(text) if _runs_run_py(_words(line))]


def _runs_run_py(words):
  return any(word in ('python', 'python3') and os.path.basename(after) == 'run.py'
             for word, after in zip(words, words[1:]))


def _words(line):
  try:
    return shlex.split(line, comments=True)
  except ValueError:  # An unbalanced quote: the test that parses the command says so.
    return line.split()


def argv(command):
  """run.py's argv of a shown command: from `run.py` on, with trailing comments and `...`
  (flags left out for brevity) dropped, `--flagfile=F` replaced by F's flags (relative
  paths from the repository root, as the docs run them there)."""
  words = shlex.split(command, comments=True)
  start = next(i for i, w in enumerate(words) if os.path.basename(w) == 'run.py')
  out = [words[start]]
  for word in words[start + 1:]:
    if word == '...':
      continue
    if word.startswith('--flagfile='):
      out.extend(flagfile(word.split('=', 1)[1]))
    else:
      out.append(word)
  return out


def flagfile(path):
  """The flags of an absl flagfile: one a line, `#` and `//` lines are comments."""
  with open(os.path.join(ROOT, path), encoding='utf-8') as f:
    lines = [line.strip() for line in f]
  return [line for line in lines if line and not line.startswith(('#', '//'))]


def expanded(command):
  """`command` as one shell-quoted line with its flagfiles expanded (for test_run.parse)."""
  return shlex.join(argv(command))


# The named recipes and where each is written: (page, section, which run.py command of
# it), or a flagfile.
RECIPES = {
    'cifar10_pretrain': ('usage.md', 'CIFAR-10', 0),
    'cifar10_finetune': ('usage.md', 'CIFAR-10', 1),
    'quickstart': 'flagfiles/quickstart.cfg',
    'randbits': 'flagfiles/randbits.cfg',
    'cifar10_convnet': 'flagfiles/cifar10_convnet.cfg',
}


def flags_of(name, **overrides):
  """run.py's flags of recipe `name` (the words after `run.py`, each `--flag=value`);
  each override `flag=value` replaces the recipe's `--flag=...` where it stands, or
  is appended."""
  home = RECIPES[name]
  if isinstance(home, str):
    words = flagfile(home)
  else:
    page, title, index = home
    words = argv(run_commands(section(page, title))[index])[1:]
  given = {key: f'--{key}={value}' for key, value in overrides.items()}
  out = [given.pop(_flag_name(word), word) for word in words]
  return out + list(given.values())


def _flag_name(word):
  return word[2:].split('=', 1)[0] if word.startswith('--') else None


def config_of(words):
  """The Config of run.py's argv `words` (`words[0]` the program), parsed by a fresh
  set of run.py's own flags, as run.py parses its command line."""
  # Imported here: reading the docs needs neither absl nor run.py.
  from absl import flags  # pylint: disable=g-import-not-at-top
  import run  # pylint: disable=g-import-not-at-top
  flag_values = flags.FlagValues()
  run.define_flags(flag_values)
  flag_values(list(words))
  return run.config_from_flags(flag_values)


def config(name, **overrides):
  """Recipe `name` as a Config, with `overrides` (Config fields) replaced."""
  return config_of(['run.py'] + flags_of(name)).replace(**overrides)
