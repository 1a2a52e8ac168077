"""Every notebook in colabs/ executed top to bottom, offline, with its results checked."""
import json
import os

import nbformat
import pytest
from nbclient import NotebookClient

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
COLABS = os.path.join(ROOT, 'colabs')
ORDER = ['load_and_inference', 'finetuning', 'distillation_self_training', 'imagenet_results',
         'randbits_mnist', 'generalized_contrastive_loss', 'digits_on_images']


@pytest.fixture(scope='module')
def work_dir(tmp_path_factory):
  """Shared by the notebooks: the first trains the demo models, the others reuse them."""
  return str(tmp_path_factory.mktemp('colabs'))


def execute(name, work_dir, monkeypatch, **env):
  """Runs the notebook with its parameters' defaults but for `env` (and the tests' work
  directory); returns what it printed after RESULT."""
  monkeypatch.setenv('SIMCLR_COLAB_DIR', work_dir)
  for key in ('SIMCLR_COLAB_FINETUNED', 'SIMCLR_COLAB_PRETRAINED', 'SIMCLR_COLAB_MNIST',
              'SIMCLR_COLAB_DATA_DIR', 'SIMCLR_COLAB_QUICK'):
    monkeypatch.delenv(key, raising=False)
  for key, value in env.items():
    monkeypatch.setenv(key, value)
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


def test_randbits_mnist(work_dir, monkeypatch):
  """The short grid: 20 bits suppress what the digits teach (Fig. 5a's finding)."""
  result = execute('randbits_mnist', work_dir, monkeypatch, SIMCLR_COLAB_QUICK='1')
  accuracy = {row['bits']: row['linear_eval'] for row in result}
  assert accuracy[0] > accuracy[20] + 0.2 and accuracy[20] < 0.2, result


def test_generalized_contrastive_loss(work_dir, monkeypatch):
  """Short runs of every variant: each learns, and its distribution term shapes the 2-D
  projections towards its prior."""
  result = execute('generalized_contrastive_loss', work_dir, monkeypatch, SIMCLR_COLAB_QUICK='1')
  assert len(result) == 5 and all(r['linear_eval'] > 0.25 for r in result.values()), result
  for name in ('decoupled_nt_xent', 'swd_hypersphere'):  # Spread round the circle.
    assert result[name]['resultant'] < 0.5, result
  assert all(0.6 < s < 1.4 for s in result['swd_normal']['std']), result  # N(0, 1)


def test_digits_on_images(work_dir, monkeypatch, real_cifar10):
  """Short runs on CIFAR-10 from ../shared: both probes read their labels off the composed
  images (a label out of step with its image would give chance, 0.1)."""
  result = execute('digits_on_images', work_dir, monkeypatch, SIMCLR_COLAB_QUICK='1',
                   SIMCLR_COLAB_DATA_DIR=real_cifar10)
  assert [row['unique_digits'] for row in result] == [1, 4000], result
  assert all(row['object'] > 0.15 and row['digit'] > 0.15 for row in result), result
