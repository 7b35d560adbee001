//! A small argument reader: `--flag VALUE` options anywhere, positionals in order, and an
//! error for anything left over (a typo never silently disables a limit).

use nestbox::Error;

pub struct Args {
    items: Vec<String>,
}

impl Args {
    pub fn new(items: Vec<String>) -> Self {
        Self { items }
    }

    /// Takes the value of the first `--name VALUE` (or `--name=VALUE`), if present.
    pub fn optional(&mut self, name: &str) -> Result<Option<String>, Error> {
        let prefix = format!("{name}=");
        let end = self
            .items
            .iter()
            .position(|a| a == "--")
            .unwrap_or(self.items.len());
        for i in 0..end {
            if self.items[i] == name {
                if i + 1 >= end {
                    return Err(Error::invalid_argument(format!("{name} needs a value")));
                }
                let value = self.items.remove(i + 1);
                self.items.remove(i);
                return Ok(Some(value));
            }
            if let Some(value) = self.items[i].strip_prefix(&prefix) {
                let value = value.to_owned();
                self.items.remove(i);
                return Ok(Some(value));
            }
        }
        Ok(None)
    }

    /// Takes every `--name VALUE`.
    pub fn all(&mut self, name: &str) -> Result<Vec<String>, Error> {
        let mut values = Vec::new();
        while let Some(v) = self.optional(name)? {
            values.push(v);
        }
        Ok(values)
    }

    /// Takes every `--NAME VALUE` whose name is one of `names`, in command-line order (where
    /// the order between different options matters, e.g. preopens become fds 3, 4, …).
    pub fn all_of(&mut self, names: &[&str]) -> Result<Vec<(String, String)>, Error> {
        let mut values = Vec::new();
        let mut i = 0;
        while i < self.items.len() && self.items[i] != "--" {
            let item = &self.items[i];
            let hit = names.iter().find_map(|name| {
                if item == name {
                    Some((*name, None))
                } else {
                    item.strip_prefix(name)
                        .and_then(|rest| rest.strip_prefix('='))
                        .map(|v| (*name, Some(v.to_owned())))
                }
            });
            let Some((name, inline)) = hit else {
                i += 1;
                continue;
            };
            let value = match inline {
                Some(v) => v,
                None => {
                    if i + 1 >= self.items.len() || self.items[i + 1] == "--" {
                        return Err(Error::invalid_argument(format!("{name} needs a value")));
                    }
                    self.items.remove(i + 1)
                }
            };
            self.items.remove(i);
            values.push((name.to_owned(), value));
        }
        Ok(values)
    }

    /// Takes every bare `--name` (a flag without a value); whether there was one.
    pub fn flag(&mut self, name: &str) -> bool {
        let end = self
            .items
            .iter()
            .position(|a| a == "--")
            .unwrap_or(self.items.len());
        let before = self.items.len();
        let mut i = 0;
        let mut end = end;
        while i < end {
            if self.items[i] == name {
                self.items.remove(i);
                end -= 1;
            } else {
                i += 1;
            }
        }
        self.items.len() != before
    }

    pub fn required(&mut self, name: &str) -> Result<String, Error> {
        self.optional(name)?
            .ok_or_else(|| Error::invalid_argument(format!("{name} is required")))
    }

    /// Takes the next positional argument (not starting with `--`).
    pub fn positional(&mut self, what: &str) -> Result<String, Error> {
        match self.items.first() {
            Some(a) if a == "--" => {
                self.items.remove(0);
                self.positional(what)
            }
            Some(a) if !a.starts_with("--") => Ok(self.items.remove(0)),
            _ => Err(Error::invalid_argument(format!("missing {what}"))),
        }
    }

    pub fn finish(self) -> Result<(), Error> {
        match self.items.first() {
            None => Ok(()),
            Some(extra) => Err(Error::invalid_argument(format!(
                "unexpected argument {extra:?}"
            ))),
        }
    }
}

pub fn read_bytes(path: &str) -> Result<Vec<u8>, Error> {
    std::fs::read(path).map_err(|e| Error::invalid_argument(format!("cannot read {path}: {e}")))
}

pub fn read_text(path: &str) -> Result<String, Error> {
    std::fs::read_to_string(path)
        .map_err(|e| Error::invalid_argument(format!("cannot read {path}: {e}")))
}
