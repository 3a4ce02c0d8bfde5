"""One everyday minio-py call per run, as a user writes it: a `Minio` client with its
defaults and the credentials Sesame issued (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY,
AWS_SESSION_TOKEN from the environment). Errors are not caught: minio-py's own report
(`S3 operation failed; code: ..., message: ...`) is what the caller reads.

usage: minio_py.py HOST:PORT REGION COMMAND ARGS...

  ls BUCKET PREFIX              every object under PREFIX: `key<TAB>size<TAB>etag`
  put BUCKET KEY FILE           fput_object (multipart by itself past 5 MiB); prints the etag
  get BUCKET KEY FILE           fget_object
  range BUCKET KEY OFFSET LENGTH FILE   get_object of a byte range, written to FILE
  copy BUCKET SOURCE KEY        copy_object (server side)
  sync DIR BUCKET PREFIX        lists PREFIX, uploads what is missing or differs by size or
                                MD5, prints `upload: KEY` for each (minio-py has no sync)
  rm BUCKET KEY...              remove_objects (one DeleteObjects batch)
  presign BUCKET KEY            presigned_get_object with its default lifetime
"""
import hashlib
import os
import sys

from minio import Minio
from minio.commonconfig import CopySource
from minio.deleteobjects import DeleteObject

endpoint, region, command, args = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4:]
client = Minio(
    endpoint,
    access_key=os.environ["AWS_ACCESS_KEY_ID"],
    secret_key=os.environ["AWS_SECRET_ACCESS_KEY"],
    session_token=os.environ["AWS_SESSION_TOKEN"],
    secure=False,
    region=region,
)


def listed(bucket, prefix):
    return {o.object_name: o for o in client.list_objects(bucket, prefix=prefix, recursive=True)}


if command == "ls":
    for name, o in listed(*args).items():
        print(f"{name}\t{o.size}\t{o.etag}")
elif command == "put":
    bucket, key, path = args
    print(client.fput_object(bucket, key, path).etag)
elif command == "get":
    client.fget_object(*args)
elif command == "range":
    bucket, key, offset, length, path = args
    response = client.get_object(bucket, key, offset=int(offset), length=int(length))
    try:
        with open(path, "wb") as f:
            f.write(response.read())
    finally:
        response.close()
        response.release_conn()
elif command == "copy":
    bucket, source, key = args
    client.copy_object(bucket, key, CopySource(bucket, source))
elif command == "sync":
    local, bucket, prefix = args
    remote = listed(bucket, prefix)
    for root, _, names in os.walk(local):
        for name in sorted(names):
            path = os.path.join(root, name)
            key = prefix + os.path.relpath(path, local)
            with open(path, "rb") as f:
                body = f.read()
            there = remote.get(key)
            if there and there.size == len(body) and there.etag == hashlib.md5(body).hexdigest():
                continue
            client.fput_object(bucket, key, path)
            print(f"upload: {key}")
elif command == "rm":
    bucket, keys = args[0], args[1:]
    errors = list(client.remove_objects(bucket, [DeleteObject(k) for k in keys]))
    for e in errors:
        print(f"{e.name}\t{e.code}\t{e.message}", file=sys.stderr)
    sys.exit(1 if errors else 0)
elif command == "presign":
    print(client.presigned_get_object(*args))
else:
    sys.exit(f"unknown command {command}")
