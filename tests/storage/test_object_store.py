"""The object store on both protocols: the local folder and S3 over HTTP (moto)."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from alphaforge.errors import DependencyUnavailable
from alphaforge.storage.object_store import ObjectNotFound, ObjectStore
from support import free_port


@pytest.fixture(params=["file", "s3"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> ObjectStore:
    if request.param == "file":
        objects = ObjectStore((tmp_path / "objects").as_uri())
    else:
        endpoint = request.getfixturevalue("s3_endpoint")
        objects = ObjectStore(
            f"s3://bucket-{uuid.uuid4().hex[:10]}/prefix",
            endpoint_url=endpoint,
            access_key_id="testing",
            secret_access_key="testing",
        )
    objects.ensure_ready()
    return objects


def test_put_get_exists_list_delete(store: ObjectStore) -> None:
    uri = store.put("a/b/one.bin", b"1")
    store.put("a/two.bin", b"22")
    assert uri == f"{store.url}/a/b/one.bin" and store.key_of(uri) == "a/b/one.bin"
    assert store.get("a/b/one.bin") == b"1" and store.exists("a/two.bin")
    assert store.list("a") == ["a/b/one.bin", "a/two.bin"]
    store.put("a/two.bin", b"replaced")
    assert store.get("a/two.bin") == b"replaced"
    store.delete("a/two.bin")
    store.delete("a/two.bin")  # deleting twice is fine
    assert not store.exists("a/two.bin")
    with pytest.raises(ObjectNotFound):
        store.get("a/two.bin")
    assert store.list("nothing-here") == []


def test_exists_many_answers_each_key_in_order(store: ObjectStore) -> None:
    """Many keys at once (concurrently on S3), each answered as ``exists`` answers it."""
    keys = [f"many/{i:02d}.bin" for i in range(40)]
    for key in keys[::3]:
        store.put(key, b"x")
    asked = keys + ["elsewhere/none.bin"]
    assert store.exists_many(asked) == [store.exists(k) for k in asked] == [i % 3 == 0 for i in range(40)] + [False]
    assert store.exists_many([]) == []


def test_a_folder_is_no_object(store: ObjectStore) -> None:
    """A key that is only a prefix of others (a local folder) reads as missing, not as an outage."""
    store.put("folder/inner.bin", b"1")
    with pytest.raises(ObjectNotFound):
        store.get("folder")


@pytest.mark.parametrize("key", ["../escape", "a/../../b", "", "/", "a//b", "./a"])
def test_keys_cannot_escape_the_store(store: ObjectStore, key: str) -> None:
    with pytest.raises(ValueError):
        store.put(key, b"x")


def test_uris_outside_the_store_are_refused(store: ObjectStore) -> None:
    with pytest.raises(ValueError):
        store.key_of("s3://another-bucket/x")


def test_local_put_leaves_no_partial_files(tmp_path: Path) -> None:
    store = ObjectStore((tmp_path / "o").as_uri())
    store.put("k/v.bin", b"x" * 1000)
    assert sorted(p.name for p in (tmp_path / "o" / "k").iterdir()) == ["v.bin"]


def test_unreachable_s3_is_a_503_naming_the_object_store_not_its_address() -> None:
    store = ObjectStore(
        "s3://some-bucket/prefix", endpoint_url=f"http://127.0.0.1:{free_port()}", access_key_id="x", secret_access_key="x"
    )
    for operation in (lambda: store.put("secret-key/k", b"x"), lambda: store.get("secret-key/k")):
        with pytest.raises(DependencyUnavailable) as info:
            operation()
        assert info.value.status_code == 503 and info.value.dependency == "object store"
        # The endpoint, bucket and key are for the server log; the client learns what failed.
        assert info.value.message == "object store unavailable: cannot connect to it"
        assert info.value.context == {"dependency": "object store"}


def test_a_missing_bucket_is_created_again_by_the_next_write(s3_endpoint: str) -> None:
    store = ObjectStore(
        f"s3://gone-{uuid.uuid4().hex[:10]}/prefix", endpoint_url=s3_endpoint, access_key_id="x", secret_access_key="x"
    )
    store.ensure_ready()
    store.put("a/one.bin", b"1")
    store.fs.rm(store.bucket, recursive=True)  # what an S3 server restarted empty looks like
    assert not store.fs.exists(store.bucket)
    # Reads see a missing object, as for any lost object; listing sees nothing.
    with pytest.raises(ObjectNotFound):
        store.get("a/one.bin")
    assert not store.exists("a/one.bin") and store.list("a") == []
    # The next write creates the bucket again and stores the object.
    assert store.put("a/two.bin", b"22") == f"{store.url}/a/two.bin"
    assert store.get("a/two.bin") == b"22" and store.list("a") == ["a/two.bin"]


def test_a_missing_bucket_that_cannot_be_created_is_a_503_saying_so(s3_endpoint: str) -> None:
    # "ab" is too short for a bucket name: S3 refuses to create it (InvalidBucketName).
    store = ObjectStore("s3://ab/prefix", endpoint_url=s3_endpoint, access_key_id="x", secret_access_key="x")
    for operation in (lambda: store.put("k", b"x"), store.ensure_ready):
        with pytest.raises(DependencyUnavailable) as info:
            operation()
        assert info.value.status_code == 503
        assert info.value.message == (
            "object store unavailable: the bucket is missing and could not be created (InvalidBucketName)"
        )


def test_only_file_and_s3_urls() -> None:
    with pytest.raises(ValueError, match="file:// or s3://"):
        ObjectStore("gs://bucket")


def test_a_local_folder_that_cannot_be_written_is_a_503_without_its_path(tmp_path: Path) -> None:
    blocker = tmp_path / "blocker"
    blocker.write_text("a file where the store's folder should be")
    store = ObjectStore((blocker / "objects").as_uri())
    with pytest.raises(DependencyUnavailable) as info:
        store.put("k/v.bin", b"x")
    assert info.value.message == "object store unavailable: cannot write: Not a directory"
    assert str(tmp_path) not in str(info.value.context)
