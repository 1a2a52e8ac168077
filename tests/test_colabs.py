"""Every notebook in colabs/ executed top to bottom, offline, with its results checked."""
import json
import os

import nbformat
import pytest
from nbclient import NotebookClient

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
COLABS = os.path.join(ROOT, 'colabs')
ORDER = ['load_and_inference', 'finetuning', 'distillation_self_training', 'imagenet_results']


@pytest.fixture(scope='module')
def work_dir(tmp_path_factory):
  """Shared by the notebooks: the first trains the demo models, the others reuse them."""
  return str(tmp_path_factory.mktemp('colabs'))


def execute(name, work_dir, monkeypatch):
  monkeypatch.setenv('SIMCLR_COLAB_DIR', work_dir)
  for key in ('SIMCLR_COLAB_FINETUNED', 'SIMCLR_COLAB_PRETRAINED'):
    monkeypatch.delenv(key, raising=False)
  notebook = nbformat.read(os.path.join(COLABS, name + '.ipynb'), as_version=4)
  NotebookClient(notebook, timeout=900, kernel_name='python3',
                 resources={'metadata': {'path': COLABS}}).execute()
  result, plots = None, []
  for cell in notebook.cells:
    if cell.cell_type != 'code':
      continue
    for output in cell.outputs:
      for line in output.get('text', '').splitlines():
        if line.startswith('RESULT '):
          result = json.loads(line[len('RESULT '):])
    if 'plt.show()' in cell.source:
      plots.append(any('image/png' in o.get('data', {}) for o in cell.outputs))
  assert plots and all(plots), f'{name}: a plot cell produced no image'
  assert notebook.cells[0].cell_type == 'markdown' and 'Colab' in notebook.cells[0].source
  assert 'parameters' in notebook.cells[1].metadata.get('tags', [])
  print(f'{name}: {result}')  # Shown with pytest -s.
  return result


def test_notebooks_are_listed():
  assert sorted(ORDER) == sorted(f[:-6] for f in os.listdir(COLABS) if f.endswith('.ipynb'))


@pytest.mark.slow
def test_load_and_inference(work_dir, monkeypatch):
  result = execute('load_and_inference', work_dir, monkeypatch)
  assert result['knn_trained'] > result['knn_random'] + 0.05, result


@pytest.mark.slow
def test_finetuning(work_dir, monkeypatch):
  result = execute('finetuning', work_dir, monkeypatch)
  assert result['finetuned_top_1'] > result['chance'] + 0.05, result


def test_distillation_self_training(work_dir, monkeypatch):
  result = execute('distillation_self_training', work_dir, monkeypatch)
  assert 0 <= result['student_top_1'] <= 1 and result['teacher_top_1'] > result['chance'], result


def test_imagenet_results(work_dir, monkeypatch):
  result = execute('imagenet_results', work_dir, monkeypatch)
  assert len(result) == 1 and list(result.values())[0] > 1 / 6, result
