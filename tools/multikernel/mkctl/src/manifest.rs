// SPDX-License-Identifier: GPL-2.0

//! Instance manifests (`mkctl up FILE`, `mkctl down FILE`): one section per instance, in the
//! order they come up (and go down in reverse).
//!
//! ```text
//! # comments and blank lines are ignored
//! [rt0]
//! cpus = 2-3
//! memory = 256M
//! kernel = /boot/vmlinuz-rt
//! initrd = /srv/rt0.cpio.gz        # optional
//! cmdline = console=ttyS1 quiet    # optional
//! on_crash = restart               # optional: on_reboot, on_crash, net
//! ```

use std::path::PathBuf;

#[derive(Debug, Default, PartialEq, Eq)]
pub struct Instance {
    pub name: String,
    pub cpus: String,
    pub memory: String,
    pub kernel: PathBuf,
    pub initrd: Option<PathBuf>,
    pub cmdline: String,
    /// Further create keys (`on_reboot=`, `on_crash=`, `net=`), in order.
    pub keys: Vec<(String, String)>,
}

impl Instance {
    /// The line `create` takes.
    pub fn create_line(&self) -> String {
        let mut line = format!("{} cpus={} memory={}", self.name, self.cpus, self.memory);
        for (k, v) in &self.keys {
            line.push_str(&format!(" {k}={v}"));
        }
        line
    }
}

/// Parses a manifest; errors name the line.
pub fn parse(text: &str) -> Result<Vec<Instance>, String> {
    let mut out: Vec<Instance> = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let n = i + 1;
        let line = raw.split('#').next().unwrap_or("").trim();
        if line.is_empty() {
            continue;
        }
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            let name = name.trim();
            if name.is_empty() || out.iter().any(|i| i.name == name) {
                return Err(format!(
                    "line {n}: empty or repeated instance name '{name}'"
                ));
            }
            out.push(Instance {
                name: name.to_string(),
                ..Default::default()
            });
            continue;
        }
        let Some(cur) = out.last_mut() else {
            return Err(format!("line {n}: a key before the first [name]"));
        };
        let (k, v) = line
            .split_once('=')
            .map(|(k, v)| (k.trim(), v.trim()))
            .ok_or_else(|| format!("line {n}: not 'key = value'"))?;
        match k {
            "cpus" => cur.cpus = v.to_string(),
            "memory" => cur.memory = v.to_string(),
            "kernel" => cur.kernel = PathBuf::from(v),
            "initrd" => cur.initrd = Some(PathBuf::from(v)),
            "cmdline" => cur.cmdline = v.to_string(),
            "on_reboot" | "on_crash" | "net" => cur.keys.push((k.to_string(), v.to_string())),
            _ => return Err(format!("line {n}: unknown key '{k}'")),
        }
    }
    for i in &out {
        if i.cpus.is_empty() || i.memory.is_empty() || i.kernel.as_os_str().is_empty() {
            return Err(format!(
                "[{}]: cpus, memory and kernel are required",
                i.name
            ));
        }
    }
    if out.is_empty() {
        return Err("no instance in the manifest".to_string());
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses() {
        let m = parse(
            "# two\n[a]\ncpus = 1\nmemory=64M\nkernel = /k # the kernel\non_crash = restart\n\n\
             [b]\ncpus=2-3\nmemory=1G\nkernel=/k2\ninitrd=/i\ncmdline = quiet a=b\n",
        )
        .unwrap();
        assert_eq!(m.len(), 2);
        assert_eq!(m[0].create_line(), "a cpus=1 memory=64M on_crash=restart");
        assert_eq!(m[1].cmdline, "quiet a=b");
        assert_eq!(m[1].initrd, Some(PathBuf::from("/i")));
    }

    #[test]
    fn refuses() {
        assert!(parse("cpus=1\n").unwrap_err().contains("line 1"));
        assert!(parse("[a]\ncpus 1\n").unwrap_err().contains("line 2"));
        assert!(parse("[a]\nbogus=1\n").unwrap_err().contains("unknown key"));
        assert!(parse("[a]\ncpus=1\n").unwrap_err().contains("required"));
        assert!(parse("[a]\n[a]\n").unwrap_err().contains("repeated"));
        assert!(parse("# nothing\n").is_err());
    }
}
