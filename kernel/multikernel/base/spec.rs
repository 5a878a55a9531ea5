// SPDX-License-Identifier: GPL-2.0

//! Parsing what users write to `create` and `destroy`, and formatting CPU lists.
//!
//! `create` takes `NAME cpus=CPULIST memory=SIZE` (keys in any order, each once); `destroy` takes
//! `NAME`. Both accept one trailing newline and any spaces or tabs between tokens. Everything
//! here is pure: no locks, no hardware, so the KUnit suite below covers it all.

use core::fmt;
use kernel::prelude::*;

/// The longest write `create` accepts, in bytes. Longer input is `E2BIG`.
pub(crate) const MAX_SPEC_LEN: usize = 256;

/// The longest instance name.
pub(crate) const MAX_NAME_LEN: usize = 31;

/// Why a spec was refused. [`SpecError::errno`] maps it to the errno `write(2)` returns; its
/// `Display` is the kernel message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum SpecError {
    /// Longer than [`MAX_SPEC_LEN`].
    TooLong,
    /// Nothing but white space.
    Empty,
    /// A NUL, control or non-ASCII byte.
    BadByte,
    /// The name is not 1-31 characters of `[a-z0-9_-]`.
    BadName,
    /// A token after the name is not `key=value`.
    NotKeyValue,
    /// A key other than `cpus` and `memory`.
    UnknownKey,
    /// A key given twice.
    DuplicateKey,
    /// `cpus=` is missing.
    MissingCpus,
    /// `memory=` is missing.
    MissingMemory,
    /// The CPU list is malformed (empty item, reversed range, not a number).
    BadCpuList,
    /// A CPU number at or above the number of possible CPUs.
    CpuOutOfRange(u32),
    /// The size is malformed.
    BadSize,
    /// The size does not fit in 64 bits.
    SizeOverflow,
    /// The size is zero.
    ZeroSize,
    /// `on_reboot=`/`on_crash=` is not `restart` or `stop`.
    BadPolicy,
    /// `net=` is not `on` or `off`.
    BadSwitch,
}

impl SpecError {
    /// The errno for this refusal.
    pub(crate) fn errno(self) -> Error {
        match self {
            Self::TooLong => E2BIG,
            _ => EINVAL,
        }
    }
}

impl fmt::Display for SpecError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::TooLong => write!(f, "input longer than {MAX_SPEC_LEN} bytes"),
            Self::Empty => write!(f, "empty input"),
            Self::BadByte => write!(f, "NUL, control or non-ASCII byte in input"),
            Self::BadName => write!(f, "name must be 1-{MAX_NAME_LEN} characters of [a-z0-9_-]"),
            Self::NotKeyValue => write!(f, "expected key=value after the name"),
            Self::UnknownKey => {
                write!(f, "unknown key (known: cpus, memory, on_reboot, on_crash)")
            }
            Self::DuplicateKey => write!(f, "key given twice"),
            Self::MissingCpus => write!(f, "cpus= is missing"),
            Self::MissingMemory => write!(f, "memory= is missing"),
            Self::BadCpuList => write!(f, "malformed CPU list"),
            Self::CpuOutOfRange(cpu) => write!(f, "CPU {cpu} does not exist"),
            Self::BadSize => write!(f, "malformed size"),
            Self::SizeOverflow => write!(f, "size too large"),
            Self::ZeroSize => write!(f, "size is zero"),
            Self::BadPolicy => write!(f, "on_reboot= and on_crash= take restart or stop"),
            Self::BadSwitch => write!(f, "net= takes on or off"),
        }
    }
}

/// An instance name: 1-31 bytes of `[a-z0-9_-]`, kept NUL-terminated for use as a sysfs name.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) struct Name {
    bytes: [u8; MAX_NAME_LEN + 1],
    len: u8,
}

impl Name {
    /// Checks and copies a name.
    pub(crate) fn new(name: &[u8]) -> Result<Self, SpecError> {
        if name.is_empty() || name.len() > MAX_NAME_LEN {
            return Err(SpecError::BadName);
        }
        if !name
            .iter()
            .all(|&b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
        {
            return Err(SpecError::BadName);
        }
        let mut bytes = [0u8; MAX_NAME_LEN + 1];
        bytes[..name.len()].copy_from_slice(name);
        Ok(Self {
            bytes,
            // `name.len() <= 31` was checked above.
            len: name.len() as u8,
        })
    }

    /// The name without its terminator.
    pub(crate) fn as_bytes(&self) -> &[u8] {
        &self.bytes[..usize::from(self.len)]
    }

    /// The name as a C string, for sysfs.
    pub(crate) fn as_cstr(&self) -> &CStr {
        // `bytes` holds the name (no NUL inside, checked in `new`) followed by at least one NUL.
        CStr::from_bytes_with_nul(&self.bytes[..=usize::from(self.len)]).unwrap_or(c"")
    }

    /// The name as text (it is ASCII).
    pub(crate) fn as_str(&self) -> &str {
        core::str::from_utf8(self.as_bytes()).unwrap_or("?")
    }
}

/// A parsed `create` request.
pub(crate) struct Spec {
    pub(crate) name: Name,
    /// Sorted, without duplicates, each below the `nr_cpus` given to [`parse_create_inner`].
    pub(crate) cpus: KVec<u32>,
    /// Requested bytes, not rounded.
    pub(crate) memory: u64,
    /// What happens when its kernel reboots (`on_reboot=`, default `stop`).
    pub(crate) on_reboot: Policy,
    /// What happens when its kernel crashes (`on_crash=`, default `stop`).
    pub(crate) on_crash: Policy,
    /// Whether it has a network link (`net=on|off`, default `on`).
    pub(crate) net: bool,
}

/// What the host does when an instance's kernel reboots or crashes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Policy {
    /// It stays stopped (or crashed).
    Stop,
    /// The loaded image is started again (within the restart limit).
    Restart,
}

impl Policy {
    fn parse(value: &[u8]) -> Result<Self, SpecError> {
        match value {
            b"stop" => Ok(Self::Stop),
            b"restart" => Ok(Self::Restart),
            _ => Err(SpecError::BadPolicy),
        }
    }

    /// The word `create` takes and `policy` shows.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::Stop => "stop",
            Self::Restart => "restart",
        }
    }
}

/// Checks the bytes of a write and returns the text without its trailing newline.
fn text(input: &[u8], max: usize) -> Result<&[u8], SpecError> {
    if input.len() > max {
        return Err(SpecError::TooLong);
    }
    let input = input.strip_suffix(b"\n").unwrap_or(input);
    if input
        .iter()
        .any(|&b| !(b == b' ' || b == b'\t' || b.is_ascii_graphic()))
    {
        return Err(SpecError::BadByte);
    }
    Ok(input)
}

/// The words of `text`, separated by blanks (spaces, tabs, newlines, NULs).
pub(crate) fn tokens(text: &[u8]) -> impl Iterator<Item = &[u8]> {
    text.split(|&b| matches!(b, b' ' | b'\t' | b'\n' | 0))
        .filter(|t| !t.is_empty())
}

/// A kernel command line the loader cannot extend safely: the kernel would read nothing of
/// what the loader appends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum CmdlineError {
    /// A NUL byte before its end: the kernel's copy of the line stops there.
    Nul,
    /// A double quote still open where the kernel's parameters end: the kernel takes the
    /// rest as one value.
    OpenQuote,
}

/// The bytes the kernel's command-line parser separates words with (`isspace()` of its
/// Latin-1 `ctype` table).
fn cmdline_blank(b: u8) -> bool {
    matches!(b, b'\t'..=b'\r' | b' ' | 0xa0)
}

/// A kernel command line split where the kernel stops reading it, as the kernel's
/// `parse_args()`/`next_arg()` split it: the kernel's part, and what follows the first word
/// `--` (or `"--"`) outside double quotes, init's arguments.
pub(crate) fn split_init_args(cmdline: &[u8]) -> Result<(&[u8], Option<&[u8]>), CmdlineError> {
    if cmdline.contains(&0) {
        return Err(CmdlineError::Nul);
    }
    let mut in_quote = false;
    let mut start = None;
    for i in 0..=cmdline.len() {
        let b = cmdline.get(i).copied();
        if b.is_none_or(|b| cmdline_blank(b) && !in_quote) {
            if let Some(s) = start.take() {
                let word = &cmdline[s..i];
                // next_arg() drops a leading quote, and then a trailing one.
                let bare = word
                    .strip_prefix(b"\"")
                    .map_or(word, |w| w.strip_suffix(b"\"").unwrap_or(w));
                if bare == b"--" {
                    return Ok((&cmdline[..s], Some(&cmdline[i..])));
                }
            }
            continue;
        }
        if b == Some(b'"') {
            in_quote = !in_quote;
        }
        start.get_or_insert(i);
    }
    if in_quote {
        return Err(CmdlineError::OpenQuote);
    }
    Ok((cmdline, None))
}

/// The words of the kernel's part of `cmdline` (before `--`; all of it if it cannot be
/// split).
fn kernel_words(cmdline: &[u8]) -> impl Iterator<Item = &[u8]> {
    split_init_args(cmdline)
        .map_or(cmdline, |(kernel, _)| kernel)
        .split(|&b| cmdline_blank(b))
        .filter(|w| !w.is_empty())
}

/// Whether the kernel command line `cmdline` sets the parameter `name`: a word `name` or
/// `name=...` before `--` (the words after it are init's).
pub(crate) fn sets_param(cmdline: &[u8], name: &[u8]) -> bool {
    kernel_words(cmdline).any(|w| {
        w.strip_prefix(name)
            .is_some_and(|rest| rest.is_empty() || rest[0] == b'=')
    })
}

/// The values the kernel command line `cmdline` gives the parameter `name` (`name=VALUE`
/// words before `--`), in order.
pub(crate) fn param_values<'a>(
    cmdline: &'a [u8],
    name: &'a [u8],
) -> impl Iterator<Item = &'a [u8]> + 'a {
    kernel_words(cmdline).filter_map(move |w| w.strip_prefix(name)?.strip_prefix(b"="))
}

/// Parses what was written to `destroy`: one name.
pub(crate) fn parse_destroy(input: &[u8]) -> Result<Name, SpecError> {
    let text = text(input, MAX_SPEC_LEN)?;
    let mut tokens = tokens(text);
    let name = tokens.next().ok_or(SpecError::Empty)?;
    if tokens.next().is_some() {
        return Err(SpecError::BadName);
    }
    Name::new(name)
}

/// Parses what was written to `create`. CPU numbers must be below `nr_cpus`. (The control
/// tree uses [`parse_create_inner`], which also says why; this is for the tests.)
#[cfg(CONFIG_MULTIKERNEL_KUNIT_TEST)]
pub(crate) fn parse_create(input: &[u8], nr_cpus: u32) -> Result<Spec, Error> {
    parse_create_inner(input, nr_cpus).map_err(|e| e.errno())
}

/// Parses what was written to `create`, with the reason for a refusal. CPU numbers must be
/// below `nr_cpus`.
pub(crate) fn parse_create_inner(input: &[u8], nr_cpus: u32) -> Result<Spec, SpecError> {
    let text = text(input, MAX_SPEC_LEN)?;
    let mut tokens = tokens(text);
    let name = Name::new(tokens.next().ok_or(SpecError::Empty)?)?;
    let mut cpus = None;
    let mut memory = None;
    let mut on_reboot = None;
    let mut on_crash = None;
    let mut net = None;
    for token in tokens {
        let eq = token
            .iter()
            .position(|&b| b == b'=')
            .ok_or(SpecError::NotKeyValue)?;
        let (key, value) = (&token[..eq], &token[eq + 1..]);
        match key {
            b"cpus" if cpus.is_some() => return Err(SpecError::DuplicateKey),
            b"cpus" => cpus = Some(parse_cpulist(value, nr_cpus)?),
            b"memory" if memory.is_some() => return Err(SpecError::DuplicateKey),
            b"memory" => memory = Some(parse_size(value)?),
            b"on_reboot" if on_reboot.is_some() => return Err(SpecError::DuplicateKey),
            b"on_reboot" => on_reboot = Some(Policy::parse(value)?),
            b"on_crash" if on_crash.is_some() => return Err(SpecError::DuplicateKey),
            b"on_crash" => on_crash = Some(Policy::parse(value)?),
            b"net" if net.is_some() => return Err(SpecError::DuplicateKey),
            b"net" => {
                net = Some(match value {
                    b"on" => true,
                    b"off" => false,
                    _ => return Err(SpecError::BadSwitch),
                })
            }
            _ => return Err(SpecError::UnknownKey),
        }
    }
    Ok(Spec {
        name,
        cpus: cpus.ok_or(SpecError::MissingCpus)?,
        memory: memory.ok_or(SpecError::MissingMemory)?,
        on_reboot: on_reboot.unwrap_or(Policy::Stop),
        on_crash: on_crash.unwrap_or(Policy::Stop),
        net: net.unwrap_or(true),
    })
}

/// Parses an unsigned decimal number without sign or leading `+`; `None` on anything else or
/// on overflow.
fn parse_u32(digits: &[u8]) -> Option<u32> {
    if digits.is_empty() || digits.len() > 10 {
        return None;
    }
    let mut value: u32 = 0;
    for &b in digits {
        if !b.is_ascii_digit() {
            return None;
        }
        value = value.checked_mul(10)?.checked_add(u32::from(b - b'0'))?;
    }
    Some(value)
}

/// Parses a CPU list, `N`, `N-M` and commas between them (`2-3`, `1,4-5`), as sysfs prints
/// them. Returns the CPUs sorted and without duplicates.
pub(crate) fn parse_cpulist(value: &[u8], nr_cpus: u32) -> Result<KVec<u32>, SpecError> {
    if value.is_empty() {
        return Err(SpecError::BadCpuList);
    }
    let mut cpus = KVec::new();
    for item in value.split(|&b| b == b',') {
        let (first, last) = match item.iter().position(|&b| b == b'-') {
            Some(dash) => (
                parse_u32(&item[..dash]).ok_or(SpecError::BadCpuList)?,
                parse_u32(&item[dash + 1..]).ok_or(SpecError::BadCpuList)?,
            ),
            None => {
                let cpu = parse_u32(item).ok_or(SpecError::BadCpuList)?;
                (cpu, cpu)
            }
        };
        if first > last {
            return Err(SpecError::BadCpuList);
        }
        if last >= nr_cpus {
            return Err(SpecError::CpuOutOfRange(last));
        }
        for cpu in first..=last {
            // Allocation failure is reported as a malformed list rather than panicking; the
            // list is bounded by `nr_cpus` entries per item anyway.
            cpus.push(cpu, GFP_KERNEL)
                .map_err(|_| SpecError::BadCpuList)?;
        }
    }
    cpus.sort_unstable();
    let mut previous = None;
    cpus.retain(|cpu| {
        let keep = previous != Some(*cpu);
        previous = Some(*cpu);
        keep
    });
    Ok(cpus)
}

/// Parses a size as `memparse()` does: a decimal (or `0x` hexadecimal) number with an optional
/// binary suffix `K`, `M`, `G`, `T`, `P` or `E` (either case).
pub(crate) fn parse_size(value: &[u8]) -> Result<u64, SpecError> {
    let (digits, radix) = match value
        .strip_prefix(b"0x")
        .or_else(|| value.strip_prefix(b"0X"))
    {
        Some(hex) => (hex, 16),
        None => (value, 10),
    };
    let end = digits
        .iter()
        .position(|b| !b.is_ascii_hexdigit() || (radix == 10 && !b.is_ascii_digit()))
        .unwrap_or(digits.len());
    // With hex digits, `E` is a digit, not the exabyte suffix, as in `memparse()`.
    let (number, suffix) = digits.split_at(end);
    if number.is_empty() {
        return Err(SpecError::BadSize);
    }
    let mut value: u64 = 0;
    for &b in number {
        let digit = match b {
            b'0'..=b'9' => b - b'0',
            b'a'..=b'f' => b - b'a' + 10,
            _ => b - b'A' + 10,
        };
        value = value
            .checked_mul(radix)
            .and_then(|v| v.checked_add(u64::from(digit)))
            .ok_or(SpecError::SizeOverflow)?;
    }
    let shift = match suffix {
        b"" => 0,
        b"K" | b"k" => 10,
        b"M" | b"m" => 20,
        b"G" | b"g" => 30,
        b"T" | b"t" => 40,
        b"P" | b"p" => 50,
        b"E" | b"e" => 60,
        _ => return Err(SpecError::BadSize),
    };
    if value == 0 {
        return Err(SpecError::ZeroSize);
    }
    if value.leading_zeros() < shift {
        return Err(SpecError::SizeOverflow);
    }
    Ok(value << shift)
}

/// Appends formatted text to a byte vector.
pub(crate) struct VecWriter<'a>(pub(crate) &'a mut KVec<u8>);

impl fmt::Write for VecWriter<'_> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        self.0
            .extend_from_slice(s.as_bytes(), GFP_KERNEL)
            .map_err(|_| fmt::Error)
    }
}

/// Writes `cpus` (sorted, without duplicates) as a CPU list, `2-3` or `1,4-5`.
pub(crate) fn write_cpulist(out: &mut impl fmt::Write, cpus: &[u32]) -> fmt::Result {
    let mut i = 0;
    while i < cpus.len() {
        let first = cpus[i];
        let mut last = first;
        while i + 1 < cpus.len() && cpus[i + 1] == last + 1 {
            i += 1;
            last = cpus[i];
        }
        if first != cpus[0] {
            out.write_str(",")?;
        }
        if first == last {
            write!(out, "{first}")?;
        } else {
            write!(out, "{first}-{last}")?;
        }
        i += 1;
    }
    Ok(())
}

#[cfg(CONFIG_MULTIKERNEL_KUNIT_TEST)]
#[kunit_tests(multikernel_spec)]
mod tests {
    use super::*;

    const NR: u32 = 8;

    fn err(input: &[u8]) -> SpecError {
        match parse_create_inner(input, NR) {
            Ok(_) => SpecError::Empty,
            Err(e) => e,
        }
    }

    #[test]
    fn kernel_params() {
        assert!(sets_param(b"tsc=unstable", b"tsc"));
        assert!(sets_param(b"quiet  tsc=reliable\n", b"tsc"));
        assert!(sets_param(b"no5lvl", b"no5lvl"));
        assert!(sets_param(b"tsc", b"tsc"));
        assert!(!sets_param(b"", b"tsc"));
        assert!(!sets_param(b"tsc_early_khz=1000 notsc", b"tsc"));
        assert!(!sets_param(b"x=tsc=unstable", b"tsc"));
        // After "--" the words are init's, not the kernel's.
        assert!(!sets_param(b"quiet -- tsc=unstable", b"tsc"));
        assert!(sets_param(b"tsc=unstable -- quiet", b"tsc"));
        let mut values = param_values(b"tsc=noirqtime quiet tsc=unstable -- tsc=reliable", b"tsc");
        assert_eq!(values.next(), Some(&b"noirqtime"[..]));
        assert_eq!(values.next(), Some(&b"unstable"[..]));
        assert_eq!(values.next(), None);
    }

    #[test]
    fn init_args() {
        let split = |line: &'static [u8]| split_init_args(line);
        assert_eq!(split(b"quiet"), Ok((&b"quiet"[..], None)));
        assert_eq!(split(b""), Ok((&b""[..], None)));
        assert_eq!(
            split(b"quiet -- single x"),
            Ok((&b"quiet "[..], Some(&b" single x"[..])))
        );
        assert_eq!(split(b"--"), Ok((&b""[..], Some(&b""[..]))));
        assert_eq!(split(b"a --\tb"), Ok((&b"a "[..], Some(&b"\tb"[..]))));
        // Every blank of the kernel's, and "--" in quotes as a word of its own.
        assert_eq!(split(b"a --\rb"), Ok((&b"a "[..], Some(&b"\rb"[..]))));
        assert_eq!(
            split(b"a\xa0--\xa0b"),
            Ok((&b"a\xa0"[..], Some(&b"\xa0b"[..])))
        );
        assert_eq!(split(b"a \"--\" b"), Ok((&b"a "[..], Some(&b" b"[..]))));
        // Not a word of its own, or inside a quoted value: no split.
        assert_eq!(split(b"a --b c-- -"), Ok((&b"a --b c-- -"[..], None)));
        assert_eq!(split(b"x=\"a -- b\" y"), Ok((&b"x=\"a -- b\" y"[..], None)));
        assert_eq!(
            split(b"x=\"a\" -- b"),
            Ok((&b"x=\"a\" "[..], Some(&b" b"[..])))
        );
        // Lines the kernel would not read the loader's parameters after.
        assert_eq!(split(b"x=\"a b"), Err(CmdlineError::OpenQuote));
        assert_eq!(split(b"quiet\0x"), Err(CmdlineError::Nul));
        // An open quote after "--" is init's business.
        assert_eq!(split(b"a -- \"b"), Ok((&b"a "[..], Some(&b" \"b"[..]))));
    }

    #[test]
    fn good_specs() -> Result {
        let spec = parse_create_inner(b"rt0 cpus=2-3 memory=256M\n", NR).map_err(|e| e.errno())?;
        assert_eq!(spec.name.as_bytes(), b"rt0");
        assert_eq!(&spec.cpus[..], &[2, 3]);
        assert_eq!(spec.memory, 256 << 20);

        // Any order, any amount of blanks, hex sizes, lists with duplicates.
        let spec = parse_create_inner(b"  a_b-9\tmemory=0x200000   cpus=5,1-2,2 ", NR)
            .map_err(|e| e.errno())?;
        assert_eq!(spec.name.as_bytes(), b"a_b-9");
        assert_eq!(&spec.cpus[..], &[1, 2, 5]);
        assert_eq!(spec.memory, 2 << 20);

        let spec = parse_create_inner(b"x cpus=7 memory=1g", NR).map_err(|e| e.errno())?;
        assert_eq!(&spec.cpus[..], &[7]);
        assert_eq!(spec.memory, 1 << 30);
        let spec = parse_create_inner(b"x cpus=1 memory=12345", NR).map_err(|e| e.errno())?;
        assert_eq!(spec.memory, 12345);
        assert_eq!(spec.on_reboot, Policy::Stop);
        assert_eq!(spec.on_crash, Policy::Stop);
        let spec = parse_create_inner(b"x cpus=1 memory=2M on_crash=restart on_reboot=stop", NR)
            .map_err(|e| e.errno())?;
        assert_eq!(spec.on_reboot, Policy::Stop);
        assert_eq!(spec.on_crash, Policy::Restart);
        assert!(spec.net);
        let spec = parse_create_inner(b"x cpus=1 memory=2M net=off", NR).map_err(|e| e.errno())?;
        assert!(!spec.net);
        let spec = parse_create_inner(b"x net=on cpus=1 memory=2M", NR).map_err(|e| e.errno())?;
        assert!(spec.net);
        assert_eq!(err(b"x cpus=1 memory=2M net=yes"), SpecError::BadSwitch);
        assert_eq!(err(b"x cpus=1 memory=2M net="), SpecError::BadSwitch);
        assert_eq!(err(b"x cpus=1 memory=2M net=On"), SpecError::BadSwitch);
        assert_eq!(
            err(b"x cpus=1 memory=2M net=off net=off"),
            SpecError::DuplicateKey
        );
        Ok(())
    }

    #[test]
    fn bad_policies() {
        assert_eq!(
            err(b"x cpus=1 memory=2M on_crash=again"),
            SpecError::BadPolicy
        );
        assert_eq!(err(b"x cpus=1 memory=2M on_reboot="), SpecError::BadPolicy);
        assert_eq!(
            err(b"x cpus=1 memory=2M on_reboot=Restart"),
            SpecError::BadPolicy
        );
        assert_eq!(
            err(b"x cpus=1 memory=2M on_crash=stop on_crash=stop"),
            SpecError::DuplicateKey
        );
    }

    #[test]
    fn bad_syntax() {
        assert_eq!(err(b""), SpecError::Empty);
        assert_eq!(err(b" \n"), SpecError::Empty);
        assert_eq!(err(b"rt0"), SpecError::MissingCpus);
        assert_eq!(err(b"rt0 cpus=1"), SpecError::MissingMemory);
        assert_eq!(err(b"rt0 memory=2M"), SpecError::MissingCpus);
        assert_eq!(err(b"rt0 cpus=1 memory=2M bogus=1"), SpecError::UnknownKey);
        assert_eq!(err(b"rt0 cpus=1 memory=2M cpus=2"), SpecError::DuplicateKey);
        assert_eq!(
            err(b"rt0 cpus=1 memory=2M memory=2M"),
            SpecError::DuplicateKey
        );
        assert_eq!(err(b"rt0 cpus=1 memory"), SpecError::NotKeyValue);
        assert_eq!(err(b"rt0 cpus 1 memory=2M"), SpecError::NotKeyValue);
        assert_eq!(err(b"rt0 =1 cpus=1 memory=2M"), SpecError::UnknownKey);
        assert_eq!(err(b"rt0 CPUS=1 memory=2M"), SpecError::UnknownKey);
        assert_eq!(err(b"rt0 cpus=1 memory=2M\n\n"), SpecError::BadByte);
        assert_eq!(err(b"rt0\0 cpus=1 memory=2M"), SpecError::BadByte);
        assert_eq!(err(b"rt0 cpus=1\0memory=2M"), SpecError::BadByte);
        assert_eq!(
            err("r\u{e9} cpus=1 memory=2M".as_bytes()),
            SpecError::BadByte
        );
        assert_eq!(err(b"rt0 cpus=1 memory=2M\r"), SpecError::BadByte);
    }

    #[test]
    fn bad_names() {
        assert_eq!(err(b"RT0 cpus=1 memory=2M"), SpecError::BadName);
        assert_eq!(err(b"rt.0 cpus=1 memory=2M"), SpecError::BadName);
        assert_eq!(err(b"rt/0 cpus=1 memory=2M"), SpecError::BadName);
        assert_eq!(err(b".. cpus=1 memory=2M"), SpecError::BadName);
        assert_eq!(err(b"cpus=1 memory=2M"), SpecError::BadName);
        assert!(Name::new(&[b'a'; MAX_NAME_LEN]).is_ok());
        assert_eq!(
            Name::new(&[b'a'; MAX_NAME_LEN + 1]),
            Err(SpecError::BadName)
        );
        assert_eq!(Name::new(b""), Err(SpecError::BadName));
    }

    #[test]
    fn name_as_cstr() -> Result {
        let name = Name::new(b"abc-1").map_err(|e| e.errno())?;
        assert_eq!(name.as_cstr(), c"abc-1");
        assert_eq!(name.as_str(), "abc-1");
        let long = Name::new(&[b'z'; MAX_NAME_LEN]).map_err(|e| e.errno())?;
        assert_eq!(long.as_cstr().to_bytes().len(), MAX_NAME_LEN);
        Ok(())
    }

    #[test]
    fn bad_cpulists() {
        assert_eq!(err(b"a cpus= memory=2M"), SpecError::BadCpuList);
        assert_eq!(err(b"a cpus=3-2 memory=2M"), SpecError::BadCpuList);
        assert_eq!(err(b"a cpus=2,,3 memory=2M"), SpecError::BadCpuList);
        assert_eq!(err(b"a cpus=2, memory=2M"), SpecError::BadCpuList);
        assert_eq!(err(b"a cpus=,2 memory=2M"), SpecError::BadCpuList);
        assert_eq!(err(b"a cpus=1-2-3 memory=2M"), SpecError::BadCpuList);
        assert_eq!(err(b"a cpus=-1 memory=2M"), SpecError::BadCpuList);
        assert_eq!(err(b"a cpus=1- memory=2M"), SpecError::BadCpuList);
        assert_eq!(err(b"a cpus=+1 memory=2M"), SpecError::BadCpuList);
        assert_eq!(err(b"a cpus=0x1 memory=2M"), SpecError::BadCpuList);
        assert_eq!(err(b"a cpus=99999999999 memory=2M"), SpecError::BadCpuList);
        assert_eq!(
            err(b"a cpus=4096 memory=2M"),
            SpecError::CpuOutOfRange(4096)
        );
        assert_eq!(err(b"a cpus=8 memory=2M"), SpecError::CpuOutOfRange(8));
        assert_eq!(err(b"a cpus=6-8 memory=2M"), SpecError::CpuOutOfRange(8));
        assert_eq!(
            err(b"a cpus=0-4294967295 memory=2M"),
            SpecError::CpuOutOfRange(u32::MAX)
        );
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size(b"1"), Ok(1));
        assert_eq!(parse_size(b"2M"), Ok(2 << 20));
        assert_eq!(parse_size(b"2m"), Ok(2 << 20));
        assert_eq!(parse_size(b"3K"), Ok(3 << 10));
        assert_eq!(parse_size(b"1T"), Ok(1 << 40));
        assert_eq!(parse_size(b"15E"), Ok(15 << 60));
        assert_eq!(parse_size(b"0x10"), Ok(16));
        assert_eq!(parse_size(b"0x1e"), Ok(30));
        assert_eq!(parse_size(b"0x1M"), Ok(1 << 20));
        assert_eq!(parse_size(b"18446744073709551615"), Ok(u64::MAX));
        assert_eq!(
            parse_size(b"18446744073709551616"),
            Err(SpecError::SizeOverflow)
        );
        assert_eq!(parse_size(b"99999999999999G"), Err(SpecError::SizeOverflow));
        assert_eq!(parse_size(b"16E"), Err(SpecError::SizeOverflow));
        assert_eq!(
            parse_size(b"0xffffffffffffffffff"),
            Err(SpecError::SizeOverflow)
        );
        assert_eq!(parse_size(b"0"), Err(SpecError::ZeroSize));
        assert_eq!(parse_size(b"0M"), Err(SpecError::ZeroSize));
        assert_eq!(parse_size(b""), Err(SpecError::BadSize));
        assert_eq!(parse_size(b"M"), Err(SpecError::BadSize));
        assert_eq!(parse_size(b"0x"), Err(SpecError::BadSize));
        assert_eq!(parse_size(b"1MB"), Err(SpecError::BadSize));
        assert_eq!(parse_size(b"1.5G"), Err(SpecError::BadSize));
        assert_eq!(parse_size(b"-1"), Err(SpecError::BadSize));
        assert_eq!(parse_size(b"1X"), Err(SpecError::BadSize));
        assert_eq!(
            err(b"a cpus=1 memory=99999999999999G"),
            SpecError::SizeOverflow
        );
        assert_eq!(err(b"a cpus=1 memory="), SpecError::BadSize);
    }

    #[test]
    fn lengths() -> Result {
        let mut long = KVec::new();
        long.extend_from_slice(b"a cpus=1 memory=2M ", GFP_KERNEL)?;
        while long.len() < MAX_SPEC_LEN + 1 {
            long.push(b' ', GFP_KERNEL)?;
        }
        assert_eq!(err(&long), SpecError::TooLong);
        long.truncate(MAX_SPEC_LEN);
        assert!(parse_create_inner(&long, NR).is_ok());
        let junk = KVec::from_elem(b'#', 4096, GFP_KERNEL)?;
        assert_eq!(err(&junk), SpecError::TooLong);
        assert_eq!(parse_create(&junk, NR).err(), Some(E2BIG));
        assert_eq!(parse_create(b"A cpus=1 memory=1", NR).err(), Some(EINVAL));
        Ok(())
    }

    #[test]
    fn destroy_names() {
        assert_eq!(
            parse_destroy(b"rt0\n").map(|n| n.as_bytes() == b"rt0"),
            Ok(true)
        );
        assert_eq!(
            parse_destroy(b"  rt0  ").map(|n| n.as_bytes() == b"rt0"),
            Ok(true)
        );
        assert_eq!(parse_destroy(b"").err(), Some(SpecError::Empty));
        assert_eq!(parse_destroy(b"rt0 rt1").err(), Some(SpecError::BadName));
        assert_eq!(parse_destroy(b"Rt0").err(), Some(SpecError::BadName));
        assert_eq!(parse_destroy(b"rt0\0").err(), Some(SpecError::BadByte));
    }

    #[test]
    fn cpulist_round_trip() -> Result {
        for text in ["0", "2-3", "1,4-5", "0-7", "1,3,5,7", "0-1,3-4,6"] {
            let cpus = parse_cpulist(text.as_bytes(), NR).map_err(|e| e.errno())?;
            let mut out = KVec::<u8>::new();
            let mut buf = VecWriter(&mut out);
            write_cpulist(&mut buf, &cpus).map_err(|_| EINVAL)?;
            assert_eq!(&out[..], text.as_bytes());
        }
        Ok(())
    }
}
