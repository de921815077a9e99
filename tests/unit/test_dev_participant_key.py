"""make dev keeps one PARTICIPANT_KEY across restarts (the participation ledger's hashes stay
comparable), and make dev-reset forgets it with the data it hashed."""

import stat

from devtools import dev
from devtools.ports import free_port


def test_the_key_is_made_once_kept_private_and_wiped_by_a_reset(tmp_path):
    key = dev.kept_participant_key(tmp_path)
    assert len(key) >= 32 and dev.kept_participant_key(tmp_path) == key
    assert stat.S_IMODE((tmp_path / dev.PARTICIPANT_KEY_FILE).stat().st_mode) == 0o600
    assert dev.reset(tmp_path, {"functions": free_port()}) == 0
    assert dev.kept_participant_key(tmp_path) != key
