import hashlib

import pytest

from ponder.backends.local import prepare_local
from ponder.backends.local.model import verify_model
from ponder.errors import ModelIntegrityError, ServerStartError


def test_wrong_hash_is_refused(tmp_path):
    f = tmp_path / "m.gguf"
    f.write_bytes(b"GGUF not really a model")
    with pytest.raises(ModelIntegrityError, match="refusing"):
        verify_model(f, "0" * 64)
    assert not (tmp_path / "m.gguf.verified").exists()


def test_right_hash_is_accepted_and_remembered(tmp_path):
    f = tmp_path / "m.gguf"
    f.write_bytes(b"payload")
    verify_model(f, hashlib.sha256(b"payload").hexdigest())
    assert (tmp_path / "m.gguf.verified").exists()
    f.write_bytes(b"tampered")  # size/mtime change invalidates the marker
    with pytest.raises(ModelIntegrityError):
        verify_model(f, hashlib.sha256(b"payload").hexdigest())


def test_missing_user_gguf_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv("PONDER_LLAMA_SERVER", "/bin/true")
    with pytest.raises(ServerStartError, match="does not exist"):
        prepare_local(tmp_path / "nope.gguf", quiet=True)
