"""Reading corpora: encodings, line ends, folders, stdin, the catalog and checked downloads."""

import hashlib
import http.server
import json
import threading
from pathlib import Path

import pytest

from charrnn.errors import CorpusError
from charrnn.text.catalog import CatalogEntry, fetch, load_catalog
from charrnn.text.resolve import load_corpus


def load(tmp_path, *specs, **kw):
    return load_corpus(list(specs), tmp_path / "cache", **kw)


def test_bom_and_line_ends_are_normalised(tmp_path):
    f = tmp_path / "win.txt"
    f.write_bytes(b"\xef\xbb\xbfone\r\ntwo\rthree\n")
    c = load(tmp_path, str(f))
    assert c.text == "one\ntwo\nthree\n"
    assert c.name == "win" and c.sources == [str(f.resolve())]


def test_non_utf8_names_the_file_and_offset_and_encoding_option_reads_it(tmp_path):
    f = tmp_path / "latin.txt"
    f.write_bytes("café au lait".encode("latin-1"))
    with pytest.raises(CorpusError, match=r"latin\.txt is not valid utf-8.*offset 3.*--encoding"):
        load(tmp_path, str(f))
    assert load(tmp_path, str(f), encoding="latin-1").text == "café au lait"


def test_binary_and_empty_files_are_refused(tmp_path):
    (tmp_path / "a.bin").write_bytes(b"PK\x03\x04\x00\x00binary")
    with pytest.raises(
        CorpusError, match=r"a\.bin looks like a binary file \(NUL byte at offset 4"
    ):
        load(tmp_path, str(tmp_path / "a.bin"))
    (tmp_path / "empty.txt").write_text("")
    with pytest.raises(CorpusError, match="corpus is empty"):
        load(tmp_path, str(tmp_path / "empty.txt"))


def test_utf16_with_encoding_option(tmp_path):
    f = tmp_path / "u16.txt"
    f.write_bytes("hello\r\nмир".encode("utf-16"))
    assert load(tmp_path, str(f), encoding="utf-16").text == "hello\nмир"


def test_a_folder_reads_every_text_file_in_order_skipping_hidden(tmp_path):
    d = tmp_path / "notes"
    (d / "sub").mkdir(parents=True)
    (d / "b.txt").write_text("bee")
    (d / "a.md").write_text("ay\n")
    (d / "sub" / "c.txt").write_text("sea\n")
    (d / ".hidden").write_text("secret")
    c = load(tmp_path, str(d))
    assert c.text == "ay\nbee\nsea\n" and c.name == "notes"
    (tmp_path / "void").mkdir()
    with pytest.raises(CorpusError, match="holds no files"):
        load(tmp_path, str(tmp_path / "void"))


def test_stdin_and_several_sources(tmp_path):
    (tmp_path / "x.txt").write_text("from a file")
    c = load(tmp_path, "-", str(tmp_path / "x.txt"), stdin=b"from stdin")
    assert c.text == "from stdin\nfrom a file" and c.name == "stdin"


def test_unknown_names_point_to_the_catalog(tmp_path):
    with pytest.raises(CorpusError, match="corpus list"):
        load(tmp_path, "no-such-thing")


def test_catalog_lists_tinyshakespeare_first_with_its_hash():
    catalog = load_catalog()
    first = next(iter(catalog.values()))
    assert first.name == "tinyshakespeare"
    assert first.sha256 == "86c4e6aa9db7c042ec79f339dcb96d42b0075e16b8fc2e86bf0ca57e2dc565ed"
    assert first.size == 1_115_394 and first.url and first.licence
    assert any(e.builtin for e in catalog.values())


def test_pystdlib_is_built_offline_and_cached(tmp_path):
    c = load(tmp_path, "pystdlib")
    assert len(c.text) >= 1_000_000 and "def " in c.text and "import " in c.text
    cached = list((tmp_path / "cache").glob("pystdlib-py*.txt"))
    assert len(cached) == 1
    assert load(tmp_path, "pystdlib").text == c.text  # same text from the cache


@pytest.fixture
def server(tmp_path):
    """A local HTTP server on 127.0.0.1 serving tmp_path/www."""
    www = tmp_path / "www"
    www.mkdir()

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *a, **kw):
            super().__init__(*a, directory=str(www), **kw)

        def log_message(self, *args):
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Quiet)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield www, f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()


def entry_for(url: str, body: bytes, sha: str | None = None) -> CatalogEntry:
    sha = sha or hashlib.sha256(body).hexdigest()
    return CatalogEntry("demo", "a test corpus", len(body), "CC0", url=url, sha256=sha)


def test_download_verifies_the_hash_and_reports_progress(server, tmp_path):
    www, base = server
    body = b"To be, or not to be\n" * 5000
    (www / "demo.txt").write_bytes(body)
    seen = []
    path = fetch(
        entry_for(f"{base}/demo.txt", body), tmp_path / "c", lambda d, t: seen.append((d, t))
    )
    assert path.read_bytes() == body
    assert seen[-1] == (len(body), len(body))


def test_a_download_with_the_wrong_hash_leaves_nothing(server, tmp_path):
    www, base = server
    (www / "demo.txt").write_bytes(b"tampered text\n")
    cache = tmp_path / "c"
    with pytest.raises(CorpusError, match="does not match its SHA-256"):
        fetch(entry_for(f"{base}/demo.txt", b"x", sha="0" * 64), cache)
    assert list(cache.iterdir()) == []


def test_an_unreachable_source_is_a_clear_error(server, tmp_path):
    _, base = server
    with pytest.raises(CorpusError, match=r"cannot download demo.*404"):
        fetch(entry_for(f"{base}/missing.txt", b"x"), tmp_path / "c")


def test_a_catalog_name_downloads_through_train_sources(server, tmp_path, monkeypatch):
    www, base = server
    body = b"ROMEO:\nBut soft!\n" * 100
    (www / "demo.txt").write_bytes(body)
    catalog = tmp_path / "catalog.json"
    e = entry_for(f"{base}/demo.txt", body)
    catalog.write_text(json.dumps({"corpora": [e.__dict__]}))
    monkeypatch.setenv("CHARRNN_CATALOG", str(catalog))
    c = load(tmp_path, "demo")
    assert c.text == body.decode() and c.sources == ["demo"] and c.name == "demo"
    assert Path(tmp_path / "cache" / "demo.txt").is_file()
