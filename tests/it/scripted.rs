//! The steps that the stories of the scripted clients share (`minio_py.rs`, `js_sdk.rs`):
//! each client's script answers the same commands (`ls`, `put`, `get`, `copy`, `sync`, `rm`,
//! `presign`), one run per step, so what the backend holds after each is checked here once.

use std::path::{Path, PathBuf};

use sesame::grant::IssuedCredential;
use sesame::model::Action::{Delete, List, Read, Write};

use crate::harness::{BackendKind, Ctx, Output, plain_get};

/// Where a story starts: a bucket holding `in/a.txt` and `out/secret.txt`, a grant on `in/`
/// to read, list, write and delete, and the client's home (`<dir>/<name>-home`) with an
/// empty `files` folder in it.
pub struct Seeded {
    pub ctx: Ctx,
    pub b: String,
    pub cred: IssuedCredential,
    pub home: PathBuf,
    pub files: PathBuf,
}

pub async fn seeded(kind: BackendKind, name: &str) -> Seeded {
    let ctx = Ctx::start(kind).await;
    let b = ctx
        .bucket_with(&[("in/a.txt", b"alpha"), ("out/secret.txt", b"secret")])
        .await;
    let cred = ctx.grant(&format!("s3://{b}/in/"), &[Read, List, Write, Delete]);
    let home = ctx.dir.path().join(format!("{name}-home"));
    let files = home.join("files");
    std::fs::create_dir_all(&files).unwrap();
    Seeded {
        ctx,
        b,
        cred,
        home,
        files,
    }
}

/// One client's story in bucket `b`, with its local files in `files`.
pub struct Story<'a, R: Fn(&[&str]) -> Output> {
    pub ctx: &'a Ctx,
    pub b: &'a str,
    pub files: &'a Path,
    pub run: R,
}

impl<R: Fn(&[&str]) -> Output> Story<'_, R> {
    pub fn path(&self, name: &str) -> String {
        self.files.join(name).to_str().unwrap().to_owned()
    }

    /// Lists the seeded `in/a.txt` alone, then puts `in/up.txt`.
    pub async fn list_and_put(&self) {
        let b = self.b;
        let listed = (self.run)(&["ls", b, "in/"]);
        let listed = &listed.ok().stdout;
        assert!(listed.starts_with("in/a.txt\t5\t"), "{listed}");
        assert_eq!(listed.lines().count(), 1, "{listed}");

        std::fs::write(self.files.join("up.txt"), b"uploaded").unwrap();
        (self.run)(&["put", b, "in/up.txt", &self.path("up.txt")]).ok();
        assert_eq!(
            self.ctx.backend_object(b, "in/up.txt").await.as_deref(),
            Some(&b"uploaded"[..])
        );
    }

    /// A server-side copy, a sync that uploads a tree and then sends nothing, a batch delete,
    /// a listing of what is left, and a presigned GET of `in/big.bin` (which holds `big`)
    /// fetched with plain HTTP.
    pub async fn copy_sync_delete_presign(&self, big: &[u8]) {
        let (b, run) = (self.b, &self.run);
        run(&["copy", b, "in/a.txt", "in/copy.txt"]).ok();
        assert_eq!(
            self.ctx.backend_object(b, "in/copy.txt").await.as_deref(),
            Some(&b"alpha"[..])
        );

        std::fs::create_dir_all(self.files.join("tree/sub")).unwrap();
        std::fs::write(self.files.join("tree/one.txt"), b"one").unwrap();
        std::fs::write(self.files.join("tree/sub/two.txt"), b"two").unwrap();
        let synced = run(&["sync", &self.path("tree"), b, "in/tree/"]);
        let synced = &synced.ok().stdout;
        assert!(
            synced.contains("upload: in/tree/one.txt")
                && synced.contains("upload: in/tree/sub/two.txt"),
            "{synced}"
        );
        assert_eq!(
            self.ctx
                .backend_object(b, "in/tree/sub/two.txt")
                .await
                .as_deref(),
            Some(&b"two"[..])
        );
        // The listing's sizes and ETags match what is here: nothing is sent again.
        let again = run(&["sync", &self.path("tree"), b, "in/tree/"]);
        assert_eq!(again.ok().stdout, "", "{again:#?}");

        let gone = [
            "in/up.txt",
            "in/copy.txt",
            "in/tree/one.txt",
            "in/tree/sub/two.txt",
        ];
        run(&[&["rm", b][..], &gone[..]].concat()).ok();
        for key in gone {
            assert!(
                self.ctx.backend_object(b, key).await.is_none(),
                "{key} is left"
            );
        }
        let listed = run(&["ls", b, "in/"]);
        let keys: Vec<&str> = listed
            .ok()
            .stdout
            .lines()
            .filter_map(|line| line.split('\t').next())
            .collect();
        assert_eq!(keys, ["in/a.txt", "in/big.bin"]);

        let url = run(&["presign", b, "in/big.bin"]);
        assert_eq!(plain_get(url.ok().stdout.trim()), big);
    }
}
