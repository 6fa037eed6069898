"""The KV cache kept on disk between runs: a resumed chat, a loaded one, or a script that asks about the same file
again starts from the stored keys and values and prefills only what differs.

One file per line of conversation, in the cache folder under a key of everything that changes the numbers (the
model's files, dtype, quantization, device, PyTorch, llm42's kernels and their choice, the KV layout). A file is a
header, then blocks, one per reply: the block's token ids, then each layer's keys and values for those positions,
as the KVCache holds them. A reply appends one block (a turn adds its positions; nothing is rewritten); a chat that
goes another way (/undo, /edit, turns left out) cuts its own file back to the last block they share. A block
counts only once its header says how many tokens it holds, written last: a process killed mid-write leaves a block
that reads as absent. Token ids are checked one by one against the prompt: a stored prefix is used only as far as
it is the prompt's own. Files are locked while written (a reader that finds one locked misses); anything that does
not read back whole is a miss, and the file is removed. The least recently used go first past the size limit; a
file whose header names the conversation file it was kept for goes as soon as that file is gone (deleted)."""

from __future__ import annotations

import fcntl
import os
import struct
import threading
from pathlib import Path

import torch

from ..paths import kv_header, kv_header_bytes, read_kv_header, used
from .kvcache import KVCache

BLOCK = struct.Struct("<4sIQ")  # b"BLK1", tokens (0 until the block is whole), first position
ALIGN = 64
DEFAULT_GB = 4.0  # $LLM42_KV_CACHE_GB or --kv-cache-gb; a 3,000-token chat of the 1.3B model is ~0.6 GB in bf16


def limit_bytes(gb: float | None = None) -> int:
    """The bound on all stored KV files together: `gb` (--kv-cache-gb), else $LLM42_KV_CACHE_GB, else 4 GB."""
    if gb is None:
        try:
            gb = float(os.environ.get("LLM42_KV_CACHE_GB", DEFAULT_GB))
        except ValueError:
            gb = DEFAULT_GB
    return max(0, int(gb * 2**30))


def _pad(n: int) -> int:
    return -n % ALIGN


class Damaged(Exception):
    """A stored file that does not read back as it was written."""


class Busy(Exception):
    """A stored file another process is writing."""


UNREADABLE = (OSError, ValueError, Damaged, struct.error)  # a file that cannot be read or written as it should


class StoredFile:
    """What a KV file holds: its token ids, where each block starts, and its blocks' (first position, tokens, offset
    of the ids, offset of the keys and values)."""

    def __init__(self, path: Path, per_token: int):
        self.path, self.per_token = path, per_token
        self.ids: list[int] = []
        self.blocks: list[tuple[int, int, int, int]] = []
        self.end = 0  # the byte after the last whole block

    @classmethod
    def read(cls, path: Path, key: str, per_token: int) -> StoredFile:
        with open(path, "rb") as f:
            header, size = read_kv_header(f)
            if not size:
                raise Damaged("not an llm42 KV file")
            if header.get("key") != key:
                raise Damaged("another model's or version's KV")
            out = cls(path, per_token)
            pos = out.end = size + _pad(size)
            total = os.fstat(f.fileno()).st_size
            while pos + BLOCK.size <= total:
                f.seek(pos)
                tag, n, first = BLOCK.unpack(f.read(BLOCK.size))
                ids_at = pos + BLOCK.size
                kv_at = ids_at + 4 * n + _pad(ids_at + 4 * n)
                end = kv_at + n * per_token
                if tag != b"BLK1" or n == 0 or first != len(out.ids) or end > total:
                    break  # a block cut short by a killed process, or not yet whole: the file ends before it
                f.seek(ids_at)
                out.ids += struct.unpack(f"<{n}i", f.read(4 * n))
                out.blocks.append((first, n, ids_at, kv_at))
                pos = out.end = end
        return out

    def shared(self, prompt: list[int]) -> int:
        """How many of the prompt's first tokens this file holds."""
        n, limit = 0, min(len(self.ids), len(prompt))
        while n < limit and self.ids[n] == prompt[n]:
            n += 1
        return n


class KVStore:
    """The stored KV files of one model as loaded: `restore` fills a KVCache from the longest stored prefix of a
    prompt, `save` appends what a reply added (written by a thread; `wait` for it)."""

    def __init__(self, root: Path, key: str, kv: KVCache, limit: int):
        self.root, self.folder, self.key, self.limit = root, root / key[:24], key, limit
        self.layout = (kv.layers, kv.heads, kv.head_dim, str(kv.dtype).removeprefix("torch."))
        self.per_token = 2 * kv.layers * kv.heads * kv.head_dim * kv.dtype.itemsize
        self.file: Path | None = None  # the file this run extends
        self.chat: str | None = None  # the conversation file the chat is recorded in (named in a new file's header)
        self.own = False  # whether this run wrote to it (then it may cut it back; a file it only read, never)
        self._thread: threading.Thread | None = None

    def files(self) -> list[Path]:
        return sorted(self.folder.glob("*.kv")) if self.folder.is_dir() else []

    def restore(self, prompt: list[int], kv: KVCache, have: int) -> int:
        """Fill `kv` with the longest stored prefix of `prompt` if it is longer than the `have` tokens already
        cached (and leaves at least one token to feed); its length, else 0 (kv untouched)."""
        self.wait()
        best, shared = None, have
        for path in self.files():
            try:
                stored = StoredFile.read(path, self.key, self.per_token)
            except UNREADABLE:
                _remove(path)
                continue
            n = min(stored.shared(prompt), len(prompt) - 1)
            if n > shared:
                best, shared = stored, n
        if best is None:
            return 0
        try:
            self._load(best, kv, shared, prompt)
        except Busy:
            return 0
        except (OSError, ValueError, RuntimeError, Damaged):
            kv.crop(0)
            _remove(best.path)
            return 0
        self.file, self.own = best.path, False
        used(best.path)
        return shared

    def _load(self, stored: StoredFile, kv: KVCache, n: int, prompt: list[int]) -> None:
        with open(stored.path, "rb") as f:
            try:
                fcntl.flock(f, fcntl.LOCK_SH | fcntl.LOCK_NB)
            except BlockingIOError:
                raise Busy from None
            if os.fstat(f.fileno()).st_size < stored.end:
                raise Damaged("cut short")
            kv.crop(0)
            kv.reserve(2 * len(prompt))  # the prompt's rest and its reply, as the buffers' doubling would
            kv.begin(n)
            size = kv.head_dim * kv.dtype.itemsize
            for first, count, _, at in stored.blocks:
                if first >= n:
                    break
                take = min(count, n - first)
                for layer in range(kv.layers):  # each head's positions straight into the cache (no copy between)
                    for j, buffers in enumerate((kv.k, kv.v)):
                        for h in range(kv.heads):
                            into = buffers[layer][h, first : first + take].view(torch.uint8).numpy()
                            where = at + ((2 * layer + j) * kv.heads + h) * count * size
                            if os.preadv(f.fileno(), [into], where) != into.nbytes:
                                raise Damaged("cut short")
            kv.commit()

    def save(self, ids: list[int], kv: KVCache) -> None:
        """Store what `ids` (the tokens `kv` holds) add to this run's file, in a thread. The KV buffers must not
        change until it is done: the next prefill waits for it (`wait`)."""
        self.wait()
        ids = list(ids[: kv.n])
        keys, values = list(kv.k), list(kv.v)  # the buffers as they are (a later growth makes new ones)
        self.beside(lambda: self._write(ids, keys, values))

    def beside(self, work) -> None:
        """Run `work` in the store's thread (the next `wait` waits for it)."""
        self.wait()
        self._thread = threading.Thread(target=work, name="llm42-kv-store")
        self._thread.start()

    def wait(self) -> None:
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join()
            self._thread = None

    def _write(self, ids: list[int], keys: list[torch.Tensor], values: list[torch.Tensor]) -> None:
        try:
            self._append(ids, keys, values)
        except UNREADABLE:
            pass  # a full disk or a file taken away: a miss next time, never the chat's problem

    def _append(self, ids: list[int], keys, values) -> None:
        """Write the blocks `ids` add to this run's file (the one it restored from, while the chat goes on from its
        end; a file of its own from the first token otherwise)."""
        self.folder.mkdir(parents=True, exist_ok=True)
        path = self.file if self.file is not None and self.file.exists() else None
        with open(path or self._new_path(), "r+b" if path else "w+b") as f:
            fcntl.flock(f, fcntl.LOCK_EX)
            path, start = Path(f.name), 0
            if os.fstat(f.fileno()).st_size == 0:
                head = kv_header_bytes({"key": self.key, "layout": self.layout, "chat": self.chat})
                f.write(head + b"\0" * _pad(len(head)))
                end = f.tell()
            else:  # what is on disk now (another run may have extended it): the blocks these ids begin with
                stored = StoredFile.read(path, self.key, self.per_token)
                end = stored.end
                for first, count, ids_at, _ in stored.blocks:
                    if stored.ids[first : first + count] != ids[first : first + count]:
                        end = ids_at - BLOCK.size
                        break
                    start = first + count
                if end < stored.end and (start == 0 or not self.own):  # another line of talk: that file kept whole
                    f.close()
                    self.file = None
                    self._append(ids, keys, values)
                    return
            f.truncate(end)
            self.file, self.own = path, True
            n = len(ids) - start
            if n <= 0:
                return
            body = end + BLOCK.size + 4 * n
            size = body + _pad(body) + n * self.per_token
            if not self._room(size - end, path):
                return
            f.seek(end)
            f.write(BLOCK.pack(b"BLK1", 0, start))  # 0 tokens until the block is whole
            f.write(struct.pack(f"<{n}i", *ids[start:]) + b"\0" * _pad(body))
            for k, v in zip(keys, values):
                for t in (k, v):
                    f.write(t[:, start : start + n].contiguous().view(torch.uint8).numpy().data)
            f.flush()
            f.seek(end)
            f.write(BLOCK.pack(b"BLK1", n, start))
        used(path)

    def _new_path(self) -> Path:
        return self.folder / f"{os.getpid()}-{os.urandom(6).hex()}.kv"

    def _room(self, adding: int, keep: Path) -> bool:
        """Make room for `adding` bytes under the limit, least recently used files first (never `keep`); whether
        they fit. A file kept for a conversation whose file is gone (deleted) goes first, whatever the room."""
        files = []
        for path in self.root.glob("*/*.kv"):
            chat = kv_header(path).get("chat")
            if path != keep and isinstance(chat, str) and not os.path.exists(chat):
                _remove(path)
                continue
            try:
                st = path.stat()
            except OSError:
                continue
            files.append((path == keep, st.st_mtime, st.st_size, path))
        total = sum(size for _, _, size, _ in files)
        for is_keep, _, size, path in sorted(files):
            if total + adding <= self.limit or is_keep:
                break
            _remove(path)
            total -= size
        return total + adding <= self.limit

    def summary(self) -> tuple[int, int] | None:
        """(tokens, bytes) of this run's stored file, for /stats; None without one."""
        self.wait()
        if self.file is None:
            return None
        try:
            stored = StoredFile.read(self.file, self.key, self.per_token)
        except UNREADABLE:
            return None
        return len(stored.ids), stored.end


def _remove(path: Path) -> None:
    try:
        path.unlink()
    except OSError:
        pass
