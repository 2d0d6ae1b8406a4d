//! The patch metadata of a built-in kind: for each JSON field that carries a `patchStrategy`
//! (and `patchMergeKey`) struct tag upstream, how a strategic merge patch treats it.
//!
//! kube-apiserver reads these tags from the Go structs by reflection; ferrolet stores JSON, so
//! the same facts live in a static tree ([`super::kinds`]). Fields that are not listed have no
//! strategy: objects merge key by key and lists are replaced whole — exactly what upstream does
//! for an untagged field.

/// What a `patchStrategy` tag says about one field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PatchStrategy {
    /// No `patchStrategy` tag: an object merges key by key, a list is replaced whole
    /// (kube-apiserver calls such lists "atomic").
    Unspecified,
    /// `patchStrategy:"merge"` with `patchMergeKey:"<key>"` on a list of objects: elements are
    /// matched by the value of the merge key and merged one by one.
    MergeByKey(&'static str),
    /// `patchStrategy:"merge"` without a merge key, on a list of scalars (e.g.
    /// `metadata.finalizers`): the lists are merged as sets.
    MergeSet,
    /// `patchStrategy:"replace"`: an object is replaced whole instead of merged.
    Replace,
}

/// The patch metadata of one field and of the fields beneath it.
#[derive(Debug)]
pub struct FieldSchema {
    /// The JSON name of the field.
    pub name: &'static str,
    /// The field's `patchStrategy`.
    pub strategy: PatchStrategy,
    /// Whether the strategy also lists `retainKeys`. Upstream records this for clients that
    /// build patches (kubectl then sends a `$retainKeys` directive); when a patch is applied
    /// only the directive counts, so this is informational here as it is there.
    pub retain_keys: bool,
    /// The fields of the object this field holds, or of each element of the list it holds.
    pub fields: &'static [FieldSchema],
}

/// The metadata of every field that is not in a table: no strategy, nothing beneath.
pub(crate) static UNSPECIFIED: FieldSchema = FieldSchema {
    name: "",
    strategy: PatchStrategy::Unspecified,
    retain_keys: false,
    fields: &[],
};

impl FieldSchema {
    /// The metadata of the child field `name`, or [`UNSPECIFIED`] when the table has none.
    #[must_use]
    pub fn child(&self, name: &str) -> &'static FieldSchema {
        lookup(self.fields, name)
    }

    /// The merge key, for a list merged by key.
    #[must_use]
    pub fn merge_key(&self) -> Option<&'static str> {
        match self.strategy {
            PatchStrategy::MergeByKey(key) => Some(key),
            _ => None,
        }
    }

    /// Whether a list under this field is merged (by key or as a set) rather than replaced.
    #[must_use]
    pub fn merges_lists(&self) -> bool {
        matches!(
            self.strategy,
            PatchStrategy::MergeByKey(_) | PatchStrategy::MergeSet
        )
    }
}

/// Finds `name` among `fields`, falling back to [`UNSPECIFIED`].
pub(crate) fn lookup(fields: &'static [FieldSchema], name: &str) -> &'static FieldSchema {
    fields
        .iter()
        .find(|field| field.name == name)
        .unwrap_or(&UNSPECIFIED)
}

/// An object field without a strategy of its own, listed for the strategies beneath it.
pub(crate) const fn object(name: &'static str, fields: &'static [FieldSchema]) -> FieldSchema {
    FieldSchema {
        name,
        strategy: PatchStrategy::Unspecified,
        retain_keys: false,
        fields,
    }
}

/// A list of objects merged by `key` (`patchStrategy:"merge" patchMergeKey:"<key>"`).
pub(crate) const fn merge_by(
    name: &'static str,
    key: &'static str,
    fields: &'static [FieldSchema],
) -> FieldSchema {
    FieldSchema {
        name,
        strategy: PatchStrategy::MergeByKey(key),
        retain_keys: false,
        fields,
    }
}

/// A list of objects merged by `key` whose strategy also lists `retainKeys`
/// (`patchStrategy:"merge,retainKeys"`).
pub(crate) const fn merge_by_retaining_keys(
    name: &'static str,
    key: &'static str,
    fields: &'static [FieldSchema],
) -> FieldSchema {
    FieldSchema {
        name,
        strategy: PatchStrategy::MergeByKey(key),
        retain_keys: true,
        fields,
    }
}

/// A list of scalars merged as a set (`patchStrategy:"merge"` without a merge key).
pub(crate) const fn set(name: &'static str) -> FieldSchema {
    FieldSchema {
        name,
        strategy: PatchStrategy::MergeSet,
        retain_keys: false,
        fields: &[],
    }
}
