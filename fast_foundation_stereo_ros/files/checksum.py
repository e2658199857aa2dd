"""SHA-256 of files, read in 1 MiB blocks (checkpoints and engines are hundreds of MB)."""
import hashlib


def file_sha256(path, chunk=1 << 20) -> str:
    """Hex SHA-256 of the file at `path`."""
    digest = hashlib.sha256()
    with open(path, 'rb') as stream:
        for block in iter(lambda: stream.read(chunk), b''):
            digest.update(block)
    return digest.hexdigest()
