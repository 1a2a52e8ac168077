"""README.md and docs/: every relative link resolves, every run.py command shown parses."""
import os
import re
import unicodedata

import pytest

import recipes
from test_run import parse

_LINK = re.compile(r'!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+"[^"]*")?\s*\)')
_CODE_SPAN = re.compile(r'`+[^`]*`+')
_SCHEME = re.compile(r'^[a-zA-Z][a-zA-Z0-9+.-]*:')


def prose(text):
  """`text` without fenced blocks and inline code, where brackets are not links."""
  lines, fenced = [], False
  for line in text.splitlines():
    if recipes._FENCE.match(line):  # pylint: disable=protected-access
      fenced = not fenced
    elif not fenced:
      lines.append(_CODE_SPAN.sub('', line))
  return '\n'.join(lines)


def anchor(title):
  """The #fragment GitHub gives a heading: lower case, punctuation gone, spaces to dashes."""
  title = _CODE_SPAN.sub(lambda m: m.group(0).strip('`'), title)
  title = re.sub(r'\[([^\]]*)\]\([^)]*\)', r'\1', title)  # A link keeps its text.
  kept = ''.join(c for c in title.lower()
                 if c in ' -_' or unicodedata.category(c)[0] in 'LN')
  return kept.replace(' ', '-')


def anchors(path):
  """Every heading fragment of a Markdown file, repeated titles numbered as GitHub does."""
  with open(path, encoding='utf-8') as f:
    text = f.read()
  seen, found = {}, set()
  for _, title, _ in recipes.headings(text):
    slug = anchor(title)
    found.add(slug if slug not in seen else f'{slug}-{seen[slug]}')
    seen[slug] = seen.get(slug, 0) + 1
  return found


def relative_links():
  """(page, target) of every link that is not a URL."""
  links = []
  for page in recipes.pages():
    for target in _LINK.findall(prose(recipes.read(page))):
      if not _SCHEME.match(target):
        links.append((page, target))
  return links


LINKS = relative_links()
COMMANDS = [(page, command) for page in recipes.pages()
            for command in recipes.run_commands(recipes.read(page))]


def test_the_pages_have_links_and_commands():
  assert len(LINKS) > 30 and len(COMMANDS) >= 8
  assert {'README.md', 'usage.md', 'distributed.md', 'semi_supervised.md'} <= {
      page for page, _ in COMMANDS}


@pytest.mark.parametrize('page, target', LINKS, ids=[f'{p}->{t}' for p, t in LINKS])
def test_relative_link_resolves(page, target):
  base = os.path.dirname(recipes.path_of(page))
  path, _, fragment = target.partition('#')
  resolved = os.path.normpath(os.path.join(base, path)) if path else recipes.path_of(page)
  assert os.path.exists(resolved), f'{page}: {target} does not exist'
  if fragment:
    assert resolved.endswith('.md'), f'{page}: {target}: an anchor in a file that is not Markdown'
    assert fragment in anchors(resolved), f'{page}: {target}: no heading gives #{fragment}'


@pytest.mark.parametrize('page, command', COMMANDS,
                         ids=[f'{p}:{i}' for i, (p, _) in enumerate(COMMANDS)])
def test_shown_run_py_command_parses(page, command):
  """Flagfiles expanded, `...` (flags left out) dropped, $VARIABLES as test_run sets them."""
  config = parse(recipes.expanded(command)).validate()
  assert config.model_dir or '...' in command, f'{page}: {command} names no --model_dir'


def test_the_readme_starts_with_the_quickstart_then_the_tests():
  lines = recipes.shell_lines(recipes.read('README.md'))
  assert lines[:2] == ['pip install -r requirements.txt && '
                       'python run.py --flagfile=flagfiles/quickstart.cfg',
                       'python -m pytest -q -n 2 tests']
  with open(os.path.join(recipes.ROOT, '.ci', 'run'), encoding='utf-8') as f:
    assert lines[1] in f.read().splitlines()  # CI runs the README's test command.


def test_anchors_follow_github():
  assert anchor("The original's ImageNet commands") == 'the-originals-imagenet-commands'
  assert anchor('Outputs in model_dir') == 'outputs-in-model_dir'
  assert anchor('Keras 3 (TFSMLayer)') == 'keras-3-tfsmlayer'
  assert anchor('Semi-supervised learning (SimCLRv2)') == 'semi-supervised-learning-simclrv2'


def test_no_page_speaks_of_issues():
  for page in recipes.pages():
    assert not re.search(r'\bissue #?\d+', recipes.read(page), re.I), page
