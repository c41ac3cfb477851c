import pickle

from xmodal.storage import Storage, redact_uri


def test_local_storage_round_trip(tmp_path):
    st = Storage(str(tmp_path / "root"))
    st.write_json({"a": 1}, "x", "y", "meta.json")
    assert st.exists("x", "y", "meta.json") and not st.exists("x", "z")
    assert st.read_json("x", "y", "meta.json") == {"a": 1}
    assert st.listdir("x") == ["y"]
    src = tmp_path / "src"
    src.mkdir()
    (src / "f.bin").write_bytes(b"123")
    st.upload_dir(src, "up")
    assert st.read_bytes("up", "f.bin") == b"123"
    assert st.local_copy("up") == tmp_path / "root" / "up"
    st.delete_dir("x")
    assert not st.exists("x")


def test_storage_pickles_by_uri(tmp_path):
    st = pickle.loads(pickle.dumps(Storage(str(tmp_path))))
    assert st.root == str(tmp_path.resolve()) and st.is_local


def test_object_store_round_trip(s3_uri, tmp_path):
    """The non-local branches (plain PUTs, copy_files up and down) against an S3 server."""
    st = Storage(s3_uri)
    assert not st.is_local and st.root == f"xmodal-cache/{st.root.split('/', 1)[1]}"
    assert "test-secret" not in repr(st) and "endpoint_override" in repr(st)
    st.write_json({"a": 1}, "x", "y", "meta.json")
    assert st.exists("x", "y", "meta.json") and not st.exists("x", "z")
    assert st.read_json("x", "y", "meta.json") == {"a": 1} and st.listdir("x") == ["y"]
    src = tmp_path / "src"
    (src / "sub").mkdir(parents=True)
    (src / "sub" / "f.bin").write_bytes(b"123")
    st.upload_dir(src, "up")
    assert st.read_bytes("up", "sub", "f.bin") == b"123"
    assert (st.local_copy("up") / "sub" / "f.bin").read_bytes() == b"123"
    st.delete_dir("x")
    assert not st.exists("x")


def test_child_keeps_the_uri_options_and_ray_gets_a_path_on_the_filesystem(s3_uri, tmp_path):
    st = Storage(s3_uri)
    tune = st.child("tune", "run-1")
    assert tune.uri.startswith(st.uri.split("?")[0] + "/tune/run-1?") and tune.uri.endswith(st.uri.split("?")[1])
    tune.write_json({"b": 2}, "state.json")
    assert st.read_json("tune", "run-1", "state.json") == {"b": 2}  # same bucket, endpoint, credentials
    path, fs = tune.for_ray("exp")
    assert "://" not in path and path == f"{st.root}/tune/run-1/exp" and fs is tune.fs  # Ray wants bucket/key

    local = Storage(str(tmp_path / "cache"))
    assert local.child("tune").uri == str(tmp_path / "cache" / "tune")
    assert local.for_ray("ray_train") == (str(tmp_path / "cache" / "ray_train"), None)


def test_uri_form_for_object_stores_keeps_scheme():
    st = Storage.__new__(Storage)
    st.uri, st.root, st.is_local = "s3://bucket/xm", "bucket/xm", False
    assert st.uri_of("shards", "k") == "s3://bucket/xm/shards/k"


def test_relative_local_storage_survives_a_change_of_working_directory(tmp_path, monkeypatch):

    monkeypatch.chdir(tmp_path)
    st = Storage("cache")
    blob = pickle.dumps(st)
    elsewhere = tmp_path / "worker"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)  # Ray Train workers run in their own artifacts folder
    assert pickle.loads(blob).path("x") == str(tmp_path / "cache" / "x")


def test_redact_uri_drops_credentials_and_keeps_options():
    uri = "s3://AKIA:s3cr3t@bucket/x/y?endpoint_override=127.0.0.1:9000&secret_key=abc&scheme=http"
    assert redact_uri(uri) == "s3://bucket/x/y?endpoint_override=127.0.0.1:9000&scheme=http"
    assert redact_uri("gs://bucket/xmodal") == "gs://bucket/xmodal"
    assert redact_uri("s3://bucket?access_key=a&secret_key=b") == "s3://bucket"
    assert redact_uri("/local/path") == "/local/path"
