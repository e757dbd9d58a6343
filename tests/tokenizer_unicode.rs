//! Every code point against Python 3.11's own answers (run at test time): the general-category
//! classes, `str.isspace()`, `str.lower()` and the Final_Sigma context. The tables were generated
//! from the same Python, so this checks the generated file is current and the lookups are right.
//! Fails (with a message) if `python3` is missing or its `unicodedata` is not 14.0.0.

use std::collections::HashMap;
use std::process::Command;

use cloze::tokenizer::unicode::{char_class, is_py_space, py_lower, unicode_version, CharClass};

const SCRIPT: &str = r#"
import sys, unicodedata
if unicodedata.unidata_version != "14.0.0":
    sys.exit("python3 has unicodedata %s, need 14.0.0 (Python 3.11)" % unicodedata.unidata_version)
out = []
for cp in range(0x110000):
    if 0xD800 <= cp < 0xE000:
        continue
    c = chr(cp)
    cat = unicodedata.category(c)
    k = "C" if cat[0] == "C" else "Z" if cat == "Zs" else "P" if cat[0] == "P" else "M" if cat == "Mn" else "-"
    low = c.lower()
    s1 = (c + "\u03a3").lower()[-1] == "\u03c2"
    s2 = ("A" + c + "\u03a3").lower()[-1] == "\u03c2"
    s3 = ("A\u03a3" + c).lower()[1] == "\u03c2"
    sig = "%d%d%d" % (s1, s2, s3)
    if k != "-" or low != c or c.isspace() or sig != "001":
        out.append("%X %s %d %s %s" % (cp, k, c.isspace(), sig, ",".join("%X" % ord(x) for x in low)))
print("\n".join(out))
"#;

#[test]
fn every_code_point_matches_python_311() {
    assert_eq!(unicode_version(), "14.0.0");
    let out = Command::new("python3")
        .args(["-c", SCRIPT])
        .output()
        .unwrap_or_else(|e| panic!("python3 (3.11, unicodedata 14.0.0) is needed: {e}"));
    assert!(
        out.status.success(),
        "python3 failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    // cp -> (class letter, isspace, sigma flags, lowercase)
    let mut py: HashMap<u32, (char, bool, String, String)> = HashMap::new();
    for line in text.lines() {
        let f: Vec<&str> = line.split(' ').collect();
        let cp = u32::from_str_radix(f[0], 16).unwrap();
        let low: String = f[4]
            .split(',')
            .map(|h| char::from_u32(u32::from_str_radix(h, 16).unwrap()).unwrap())
            .collect();
        py.insert(
            cp,
            (
                f[1].chars().next().unwrap(),
                f[2] == "1",
                f[3].to_owned(),
                low,
            ),
        );
    }
    assert!(
        py.len() > 100_000,
        "python listed only {} code points",
        py.len()
    );
    let mut bad = Vec::new();
    for cp in (0..0x11_0000u32).filter(|cp| !(0xD800..0xE000).contains(cp)) {
        let c = char::from_u32(cp).unwrap();
        let (class, space, sigma, low) =
            py.get(&cp)
                .cloned()
                .unwrap_or(('-', false, "001".into(), c.to_string()));
        let ours = match char_class(c) {
            CharClass::Control => 'C',
            CharClass::SpaceSep => 'Z',
            CharClass::Punct => 'P',
            CharClass::NonspacingMark => 'M',
            CharClass::Other => '-',
        };
        let final_s = |s: String, at_end: bool| {
            let l: Vec<char> = py_lower(&s).chars().collect();
            let ch = if at_end { l[l.len() - 1] } else { l[1] };
            if ch == '\u{3C2}' {
                '1'
            } else {
                '0'
            }
        };
        let our_sigma: String = [
            final_s(format!("{c}\u{3A3}"), true),
            final_s(format!("A{c}\u{3A3}"), true),
            final_s(format!("A\u{3A3}{c}"), false),
        ]
        .iter()
        .collect();
        if ours != class
            || is_py_space(c) != space
            || py_lower(&c.to_string()) != low
            || our_sigma != sigma
        {
            bad.push(format!(
                "U+{cp:04X}: python ({class}, space {space}, sigma {sigma}, lower {low:?}) vs ours ({ours}, {}, {our_sigma}, {:?})",
                is_py_space(c),
                py_lower(&c.to_string())
            ));
        }
    }
    assert!(
        bad.is_empty(),
        "{} code points differ from Python; first ones:\n{}",
        bad.len(),
        bad[..bad.len().min(10)].join("\n")
    );
}
