"""What a client sees in an error: no server paths, no huge echoed names."""

import grpc
import tensorflow as tf

from serving import errors


def test_redact_hides_server_paths_and_keeps_the_useful_part():
    base = "/srv/models/recommender"
    message = f"SavedModel file does not exist at: {base}/17/{{saved_model.pbtxt|saved_model.pb}}"
    assert errors.redact(message, base) == (
        "SavedModel file does not exist at: recommender/17/{saved_model.pbtxt|saved_model.pb}"
    )
    # Any other absolute path keeps only its last component.
    assert errors.redact("open /home/ci/work/vocab.txt: denied") == "open .../vocab.txt: denied"
    # Not paths: a REST route, a relative path, a URL.
    for text in ("input 'a/b' bad", "see http://x.org/a/b", "assets.extra/items.tsv: 3 bytes"):
        assert errors.redact(text) == text


def test_from_exception_redacts_and_maps_recursion_to_invalid_argument():
    error = errors.from_exception(RuntimeError("failed reading /var/lib/secret/model/1/x.pb"))
    assert error.code == grpc.StatusCode.INTERNAL
    assert error.message == "RuntimeError: failed reading .../x.pb"
    tf_error = errors.from_exception(tf.errors.NotFoundError(None, None, "no /a/b/c here"))
    assert tf_error.code == grpc.StatusCode.NOT_FOUND and tf_error.message == "no .../c here"
    assert errors.from_exception(RecursionError()).code == grpc.StatusCode.INVALID_ARGUMENT


def test_clip_and_the_message_cap():
    assert errors.clip("short") == "short"
    assert errors.clip("x" * 100) == "x" * 80 + "...(100 chars)"
    error = errors.invalid("y" * 10_000)
    assert len(error.message) <= errors.MAX_MESSAGE_CHARS
    assert error.message.endswith("... (10000 chars)")
