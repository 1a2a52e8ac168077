"""The subset list verifier accepts the published lists and rejects others."""
import os

import pytest

from conftest import SHARED_DIR
from imagenet_subsets import fetch


def test_verify_rejects_wrong_content():
  with pytest.raises(ValueError, match='lines'):
    fetch.verify('1percent', b'n01_1.JPEG\n')
  fake = b''.join(b'n%08d.JPEG\n' % i for i in range(12811))
  with pytest.raises(ValueError, match='sha256'):
    fetch.verify('1percent', fake)


@pytest.mark.skipif(not os.path.isdir(SHARED_DIR), reason='../shared is absent')
@pytest.mark.parametrize('name', ['1percent', '10percent'])
def test_verify_accepts_published_lists(name):
  with open(os.path.join(SHARED_DIR, 'reference', 'imagenet_subsets', name + '.txt'), 'rb') as f:
    fetch.verify(name, f.read())
