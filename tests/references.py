"""The real things the tests (and bench/) compare against.

Each reference is its own function; none touches the network.
"""
import hashlib
import os
import shutil
import tempfile
from pathlib import Path


# --- tiktoken's GPT-2 encoding (lesson 01) ---------------------------------------------------

# the addresses tiktoken_ext/openai_public.py loads GPT-2's files from
_GPT2_URLS = {
    "encoder.json": "https://openaipublic.blob.core.windows.net/gpt-2/encodings/main/encoder.json",
    "vocab.bpe": "https://openaipublic.blob.core.windows.net/gpt-2/encodings/main/vocab.bpe",
}
_tiktoken_gpt2 = None


def tiktoken_gpt2():
    """tiktoken's "gpt2" Encoding, loaded without the network.

    tiktoken caches each download in TIKTOKEN_CACHE_DIR under the sha1 of its URL; we fill
    a temporary cache with our copies of GPT-2's files (numogpt.tokenizer.gpt2_files, sha256
    checked there and again by tiktoken), so tiktoken finds them and never downloads.
    """
    global _tiktoken_gpt2
    if _tiktoken_gpt2 is None:
        import tiktoken

        from numogpt.tokenizer import gpt2_files

        before = os.environ.get("TIKTOKEN_CACHE_DIR")
        with tempfile.TemporaryDirectory(prefix="tiktoken-cache-") as cache_dir:
            for path in gpt2_files():
                key = hashlib.sha1(_GPT2_URLS[path.name].encode()).hexdigest()
                shutil.copyfile(path, Path(cache_dir) / key)
            os.environ["TIKTOKEN_CACHE_DIR"] = cache_dir
            try:
                _tiktoken_gpt2 = tiktoken.get_encoding("gpt2")  # reads the files now, keeps them in memory
            finally:  # leave the environment as we found it
                if before is None:
                    del os.environ["TIKTOKEN_CACHE_DIR"]
                else:
                    os.environ["TIKTOKEN_CACHE_DIR"] = before
    return _tiktoken_gpt2
