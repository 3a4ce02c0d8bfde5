"""Calls every S3 operation of Sesame's table once with boto3 and prints one line per
operation: `Operation<TAB>OK` or `Operation<TAB>ErrorCode<TAB>message`.

usage: every_operation.py ENDPOINT BUCKET PREFIX BUCKET_FOR_BUCKET_OPERATIONS [with-bucket-configuration]

PREFIX is where the objects live (`in/` inside the grant, `out/` outside it). The caller
has seeded PREFIX + "obj" (small) and PREFIX + "big" (6 MiB, for UploadPartCopy).
"""
import sys

import boto3
import botocore
from botocore.config import Config

endpoint, bucket, prefix, bucket_ops_bucket = sys.argv[1:5]
s3 = boto3.client(
    "s3",
    endpoint_url=endpoint,
    config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 1}),
)
key = prefix + "obj"


def call(name, fn):
    try:
        result = fn()
        print(f"{name}\tOK", flush=True)
        return result
    except botocore.exceptions.ClientError as e:
        err = e.response.get("Error", {})
        print(f"{name}\t{err.get('Code')}\t{err.get('Message', '')}", flush=True)
        return None


def upload_id(result):
    return result["UploadId"] if result else "no-such-upload"


call("ListBuckets", lambda: s3.list_buckets())
call("ListObjects", lambda: s3.list_objects(Bucket=bucket, Prefix=prefix))
call("ListObjectsV2", lambda: s3.list_objects_v2(Bucket=bucket, Prefix=prefix))
call("ListObjectVersions", lambda: s3.list_object_versions(Bucket=bucket, Prefix=prefix))
call("ListMultipartUploads", lambda: s3.list_multipart_uploads(Bucket=bucket, Prefix=prefix))
call("HeadBucket", lambda: s3.head_bucket(Bucket=bucket_ops_bucket))
call("GetBucketLocation", lambda: s3.get_bucket_location(Bucket=bucket_ops_bucket))
call("GetObject", lambda: s3.get_object(Bucket=bucket, Key=key)["Body"].read())
call("HeadObject", lambda: s3.head_object(Bucket=bucket, Key=key))
call("GetObjectAttributes", lambda: s3.get_object_attributes(Bucket=bucket, Key=key, ObjectAttributes=["ObjectSize"]))
call("GetObjectTagging", lambda: s3.get_object_tagging(Bucket=bucket, Key=key))
call("GetObjectAcl", lambda: s3.get_object_acl(Bucket=bucket, Key=key))
call("PutObjectAcl", lambda: s3.put_object_acl(Bucket=bucket, Key=key, AccessControlPolicy={
    "Owner": {"ID": "owner"},
    "Grants": [{"Grantee": {"Type": "CanonicalUser", "ID": "owner"}, "Permission": "FULL_CONTROL"}],
}))
call("CreateBucket", lambda: s3.create_bucket(Bucket=bucket_ops_bucket))
call("PutObject", lambda: s3.put_object(Bucket=bucket, Key=prefix + "put", Body=b"put"))
call("PutObjectTagging", lambda: s3.put_object_tagging(Bucket=bucket, Key=key, Tagging={"TagSet": [{"Key": "k", "Value": "v"}]}))
call("DeleteObjectTagging", lambda: s3.delete_object_tagging(Bucket=bucket, Key=key))
call("CopyObject", lambda: s3.copy_object(Bucket=bucket, Key=prefix + "copy", CopySource={"Bucket": bucket, "Key": key}))

mp = call("CreateMultipartUpload", lambda: s3.create_multipart_upload(Bucket=bucket, Key=prefix + "mp"))
part = call("UploadPart", lambda: s3.upload_part(Bucket=bucket, Key=prefix + "mp", UploadId=upload_id(mp), PartNumber=1, Body=b"p" * 1024))
call("ListParts", lambda: s3.list_parts(Bucket=bucket, Key=prefix + "mp", UploadId=upload_id(mp)))
parts = [{"PartNumber": 1, "ETag": part["ETag"] if part else '"x"'}]
call("CompleteMultipartUpload", lambda: s3.complete_multipart_upload(Bucket=bucket, Key=prefix + "mp", UploadId=upload_id(mp), MultipartUpload={"Parts": parts}))

mp2 = call("CreateMultipartUpload(2)", lambda: s3.create_multipart_upload(Bucket=bucket, Key=prefix + "mp2"))
call("UploadPartCopy", lambda: s3.upload_part_copy(Bucket=bucket, Key=prefix + "mp2", UploadId=upload_id(mp2), PartNumber=1, CopySource={"Bucket": bucket, "Key": prefix + "big"}))
call("AbortMultipartUpload", lambda: s3.abort_multipart_upload(Bucket=bucket, Key=prefix + "mp2", UploadId=upload_id(mp2)))

call("DeleteObject", lambda: s3.delete_object(Bucket=bucket, Key=prefix + "copy"))
call("DeleteObjects", lambda: s3.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": prefix + "put"}, {"Key": prefix + "mp"}]}))

# Bucket configuration is the backend operator's business: never in the table. Only tried
# through the gateway (a sixth argument), never directly against the backend.
if sys.argv[5:] == ["with-bucket-configuration"]:
    call("CreateBucket(new)", lambda: s3.create_bucket(Bucket=bucket + "-new"))
    call("PutBucketPolicy", lambda: s3.put_bucket_policy(Bucket=bucket, Policy='{"Version": "2012-10-17", "Statement": []}'))
    call("PutBucketVersioning", lambda: s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"}))
    call("DeleteBucket", lambda: s3.delete_bucket(Bucket=bucket))
