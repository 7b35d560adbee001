//! Directory listing (`fd_readdir`): the read-only fixture tree at /data, recursively, with the
//! type each entry's dirent reports and the size `stat` reports, sorted by name (bytes); then 150
//! long-named files in /sandbox/many, enough to need several `fd_readdir` calls (cookies), and
//! an empty directory.
use std::fs;

fn list(dir: &str, prefix: &str, out: &mut Vec<String>) {
    let mut entries: Vec<_> = match fs::read_dir(dir) {
        Ok(it) => it.map(|e| e.unwrap()).collect(),
        Err(err) => {
            out.push(format!("{prefix}: {}", wasi_guests::err_name(&err)));
            return;
        }
    };
    entries.sort_by_key(|e| e.file_name());
    for entry in entries {
        let name = entry.file_name().to_string_lossy().into_owned();
        let path = format!("{dir}/{name}");
        let rel = format!("{prefix}{name}");
        let ty = entry.file_type().unwrap();
        if ty.is_dir() {
            out.push(format!("dir  {rel}"));
            list(&path, &format!("{rel}/"), out);
        } else if ty.is_file() {
            out.push(format!("file {rel} {}", fs::metadata(&path).unwrap().len()));
        } else if ty.is_symlink() {
            out.push(format!("link {rel}"));
        } else {
            out.push(format!("othr {rel}"));
        }
    }
}

fn main() {
    let mut out = Vec::new();
    list("/data", "", &mut out);
    for line in &out {
        println!("{line}");
    }

    fs::create_dir("/sandbox/many").unwrap();
    let mut expected: Vec<String> = (0..150)
        .map(|i| format!("a-rather-long-file-name-to-fill-the-readdir-buffer-{i:03}.txt"))
        .collect();
    for name in &expected {
        fs::write(format!("/sandbox/many/{name}"), "").unwrap();
    }
    let mut names: Vec<String> = fs::read_dir("/sandbox/many")
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    expected.sort();
    println!(
        "many: {} entries, names match: {}",
        names.len(),
        names == expected
    );

    fs::create_dir("/sandbox/empty").unwrap();
    println!(
        "empty: {} entries",
        fs::read_dir("/sandbox/empty").unwrap().count()
    );
}
