// One everyday call of the AWS SDK for JavaScript v3 per run, as a user writes it: an
// S3Client with its defaults, the endpoint and region given, and the credentials Sesame issued
// found by the SDK itself in AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY and AWS_SESSION_TOKEN.
// Errors end the run with the SDK's name and message for them (`AccessDenied: ...`).
//
// usage: node js_sdk.cjs ENDPOINT REGION COMMAND ARGS...
//
//   ls BUCKET PREFIX             every object under PREFIX: `key<TAB>size<TAB>etag`
//   put BUCKET KEY FILE          PutObject of a file stream (sent aws-chunked, with a
//                                checksum trailer and no Content-Length); prints the ETag
//   put-buffer BUCKET KEY FILE   PutObject of the file's bytes read into memory
//   upload BUCKET KEY FILE       lib-storage's Upload of a file stream (multipart past 5 MiB)
//   get BUCKET KEY FILE          GetObject into FILE
//   range BUCKET KEY RANGE FILE  GetObject with `Range: RANGE` into FILE
//   copy BUCKET SOURCE KEY       CopyObject (server side)
//   sync DIR BUCKET PREFIX       lists PREFIX, puts (from memory) what is missing or differs
//                                by size or MD5, prints `upload: KEY` for each (the SDK has
//                                no sync)
//   rm BUCKET KEY...             DeleteObjects, one batch
//   presign BUCKET KEY           getSignedUrl of a GetObject, default lifetime
'use strict';

const crypto = require('node:crypto');
const fs = require('node:fs');
const path = require('node:path');
const {
  S3Client,
  CopyObjectCommand,
  DeleteObjectsCommand,
  GetObjectCommand,
  PutObjectCommand,
  paginateListObjectsV2,
} = require('@aws-sdk/client-s3');
const { Upload } = require('@aws-sdk/lib-storage');
const { getSignedUrl } = require('@aws-sdk/s3-request-presigner');

const [endpoint, region, command, ...args] = process.argv.slice(2);
const s3 = new S3Client({ endpoint, region });

async function listed(Bucket, Prefix) {
  const objects = new Map();
  for await (const page of paginateListObjectsV2({ client: s3 }, { Bucket, Prefix })) {
    for (const o of page.Contents ?? []) objects.set(o.Key, o);
  }
  return objects;
}

function* files(dir) {
  for (const entry of fs.readdirSync(dir, { withFileTypes: true })) {
    const full = path.join(dir, entry.name);
    if (entry.isDirectory()) yield* files(full);
    else yield full;
  }
}

async function get(params, file) {
  const out = await s3.send(new GetObjectCommand(params));
  fs.writeFileSync(file, await out.Body.transformToByteArray());
}

const commands = {
  async ls(Bucket, Prefix) {
    for (const [key, o] of await listed(Bucket, Prefix)) console.log(`${key}\t${o.Size}\t${o.ETag}`);
  },
  async put(Bucket, Key, file) {
    const Body = fs.createReadStream(file);
    const out = await s3.send(new PutObjectCommand({ Bucket, Key, Body }));
    console.log(out.ETag);
  },
  async 'put-buffer'(Bucket, Key, file) {
    const out = await s3.send(new PutObjectCommand({ Bucket, Key, Body: fs.readFileSync(file) }));
    console.log(out.ETag);
  },
  async upload(Bucket, Key, file) {
    const upload = new Upload({ client: s3, params: { Bucket, Key, Body: fs.createReadStream(file) } });
    console.log((await upload.done()).ETag);
  },
  async get(Bucket, Key, file) {
    await get({ Bucket, Key }, file);
  },
  async range(Bucket, Key, Range, file) {
    await get({ Bucket, Key, Range }, file);
  },
  async copy(Bucket, source, Key) {
    await s3.send(new CopyObjectCommand({ Bucket, Key, CopySource: `${Bucket}/${source}` }));
  },
  async sync(dir, Bucket, prefix) {
    const remote = await listed(Bucket, prefix);
    for (const file of files(dir)) {
      const Key = prefix + path.relative(dir, file);
      const Body = fs.readFileSync(file);
      const there = remote.get(Key);
      const md5 = `"${crypto.createHash('md5').update(Body).digest('hex')}"`;
      if (there && there.Size === Body.length && there.ETag === md5) continue;
      await s3.send(new PutObjectCommand({ Bucket, Key, Body }));
      console.log(`upload: ${Key}`);
    }
  },
  async rm(Bucket, ...keys) {
    const out = await s3.send(
      new DeleteObjectsCommand({ Bucket, Delete: { Objects: keys.map((Key) => ({ Key })) } }),
    );
    for (const e of out.Errors ?? []) console.error(`${e.Key}\t${e.Code}\t${e.Message}`);
    if (out.Errors?.length) process.exitCode = 1;
  },
  async presign(Bucket, Key) {
    console.log(await getSignedUrl(s3, new GetObjectCommand({ Bucket, Key })));
  },
};

if (!commands[command]) {
  console.error(`unknown command ${command}`);
  process.exit(2);
}
commands[command](...args).catch((e) => {
  console.error(`${e.name}: ${e.message} (HTTP ${e.$metadata?.httpStatusCode})`);
  process.exit(1);
});
