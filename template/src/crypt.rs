//! SHA-crypt (`$5$`, `$6$`) for the `password_hash` filter, as glibc's `crypt()` computes it.

use sha2::Digest;

const ITOA64: &[u8] = b"./0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

fn b64_24(out: &mut String, b2: u8, b1: u8, b0: u8, n: usize) {
    let mut w = (u32::from(b2) << 16) | (u32::from(b1) << 8) | u32::from(b0);
    for _ in 0..n {
        out.push(ITOA64[(w & 0x3f) as usize] as char);
        w >>= 6;
    }
}

fn repeat_to(digest: &[u8], len: usize) -> Vec<u8> {
    digest.iter().copied().cycle().take(len).collect()
}

fn sha_crypt<D: Digest>(pw: &[u8], salt: &[u8], rounds: u32) -> Vec<u8> {
    let h = |parts: &[&[u8]]| -> Vec<u8> {
        let mut d = D::new();
        for p in parts {
            d.update(p);
        }
        d.finalize().to_vec()
    };
    let b = h(&[pw, salt, pw]);
    let mut a = D::new();
    a.update(pw);
    a.update(salt);
    a.update(repeat_to(&b, pw.len()));
    let mut n = pw.len();
    while n > 0 {
        if n & 1 == 1 {
            a.update(&b);
        } else {
            a.update(pw);
        }
        n >>= 1;
    }
    let mut c = a.finalize().to_vec();
    let dp = {
        let mut d = D::new();
        for _ in 0..pw.len() {
            d.update(pw);
        }
        d.finalize().to_vec()
    };
    let p = repeat_to(&dp, pw.len());
    let ds = {
        let mut d = D::new();
        for _ in 0..(16 + usize::from(c[0])) {
            d.update(salt);
        }
        d.finalize().to_vec()
    };
    let s = repeat_to(&ds, salt.len());
    for i in 0..rounds {
        let mut d = D::new();
        if i & 1 == 1 {
            d.update(&p);
        } else {
            d.update(&c);
        }
        if i % 3 != 0 {
            d.update(&s);
        }
        if i % 7 != 0 {
            d.update(&p);
        }
        if i & 1 == 1 {
            d.update(&c);
        } else {
            d.update(&p);
        }
        c = d.finalize().to_vec();
    }
    c
}

/// A random salt of `n` crypt characters (from the OS's random source).
pub fn random_salt(n: usize) -> Result<String, String> {
    use std::io::Read;
    let mut buf = vec![0u8; n];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut buf))
        .map_err(|e| format!("cannot read /dev/urandom: {e}"))?;
    Ok(buf.iter().map(|b| ITOA64[usize::from(b & 0x3f)] as char).collect())
}

/// `crypt(pw, "$6$[rounds=N$]salt")` for `sha512`, `$5$` for `sha256`.
pub fn crypt(pw: &str, algo: &str, salt: &str, rounds: Option<u32>) -> Result<String, String> {
    let salt: String = salt.chars().take(16).collect();
    if salt.contains(['$', ':', '\n']) {
        return Err(format!("invalid salt '{salt}'"));
    }
    let r = rounds.unwrap_or(5000).clamp(1000, 999_999_999);
    let (id, digest, order): (&str, Vec<u8>, &[[usize; 3]]) = match algo {
        "sha512" | "sha512_crypt" => (
            "6",
            sha_crypt::<sha2::Sha512>(pw.as_bytes(), salt.as_bytes(), r),
            &[
                [0, 21, 42],
                [22, 43, 1],
                [44, 2, 23],
                [3, 24, 45],
                [25, 46, 4],
                [47, 5, 26],
                [6, 27, 48],
                [28, 49, 7],
                [50, 8, 29],
                [9, 30, 51],
                [31, 52, 10],
                [53, 11, 32],
                [12, 33, 54],
                [34, 55, 13],
                [56, 14, 35],
                [15, 36, 57],
                [37, 58, 16],
                [59, 17, 38],
                [18, 39, 60],
                [40, 61, 19],
                [62, 20, 41],
            ],
        ),
        "sha256" | "sha256_crypt" => (
            "5",
            sha_crypt::<sha2::Sha256>(pw.as_bytes(), salt.as_bytes(), r),
            &[
                [0, 10, 20],
                [21, 1, 11],
                [12, 22, 2],
                [3, 13, 23],
                [24, 4, 14],
                [15, 25, 5],
                [6, 16, 26],
                [27, 7, 17],
                [18, 28, 8],
                [9, 19, 29],
            ],
        ),
        other => return Err(format!("password_hash: unsupported hash type '{other}' (use sha512 or sha256)")),
    };
    let mut out = format!("${id}$");
    if rounds.is_some() && r != 5000 {
        out.push_str(&format!("rounds={r}$"));
    }
    out.push_str(&salt);
    out.push('$');
    for [a, b, c] in order {
        b64_24(&mut out, digest[*a], digest[*b], digest[*c], 4);
    }
    if id == "6" {
        b64_24(&mut out, 0, 0, digest[63], 2);
    } else {
        b64_24(&mut out, 0, digest[31], digest[30], 3);
    }
    Ok(out)
}
