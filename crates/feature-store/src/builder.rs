//! The [`SyncOptions`](crate::SyncOptions) setters every store provider's builder offers,
//! written once.

/// Expands, inside a store provider builder's `impl` block, to the builder methods that set
/// its [`SyncOptions`](crate::SyncOptions): `start_timeout`, `timeout`, `refresh_interval`,
/// `backoff`, `snapshot_path`, `bootstrap_file` and `options`. They are inherent methods, so
/// `PostgresProvider::builder(url).start_timeout(..)` needs no import.
///
/// The builder keeps its settings in a field named `options`. `store` names the store in the
/// methods' documentation (`"the database"`, `"Redis"`); `revision` names what the periodic
/// check reads (`"the version counter"`).
///
/// ```
/// use feature_store::SyncOptions;
/// use std::time::Duration;
///
/// struct ExampleBuilder {
///     options: SyncOptions,
/// }
///
/// impl ExampleBuilder {
///     feature_store::sync_option_setters!(store: "the store", revision: "the revision");
/// }
///
/// let b = ExampleBuilder { options: SyncOptions::default() }
///     .start_timeout(Duration::from_secs(1))
///     .backoff(Duration::from_millis(10), Duration::from_secs(1));
/// assert_eq!(b.options.start_timeout, Duration::from_secs(1));
/// assert_eq!(b.options.backoff_max, Duration::from_secs(1));
/// ```
#[macro_export]
macro_rules! sync_option_setters {
    (store: $store:literal, revision: $revision:literal $(,)?) => {
        #[doc = concat!("How long `start` tries ", $store, " before falling back (default 5 s).")]
        pub fn start_timeout(mut self, timeout: ::std::time::Duration) -> Self {
            self.options.start_timeout = timeout;
            self
        }

        /// Time limit of each later operation (default 5 s).
        pub fn timeout(mut self, timeout: ::std::time::Duration) -> Self {
            self.options.timeout = timeout;
            self
        }

        #[doc = concat!("How often ", $revision, " is checked for missed changes (default 30 s).")]
        pub fn refresh_interval(mut self, every: ::std::time::Duration) -> Self {
            self.options.refresh_interval = every;
            self
        }

        /// Reconnection delays: from `initial`, doubling, capped at `max`, with jitter
        /// (default 200 ms to 30 s).
        pub fn backoff(
            mut self,
            initial: ::std::time::Duration,
            max: ::std::time::Duration,
        ) -> Self {
            self.options.backoff_initial = initial;
            self.options.backoff_max = max;
            self
        }

        #[doc = concat!("Writes the last good flags to `path` and serves them when ", $store, " is down at start.")]
        pub fn snapshot_path(mut self, path: impl Into<::std::path::PathBuf>) -> Self {
            self.options.snapshot_path = Some(path.into());
            self
        }

        #[doc = concat!("Serves this flag file when ", $store, " is down at start and no snapshot exists.")]
        pub fn bootstrap_file(mut self, path: impl Into<::std::path::PathBuf>) -> Self {
            self.options.bootstrap_file = Some(path.into());
            self
        }

        /// All engine settings at once.
        pub fn options(mut self, options: $crate::SyncOptions) -> Self {
            self.options = options;
            self
        }
    };
}

#[cfg(test)]
mod tests {
    use crate::SyncOptions;
    use std::path::PathBuf;
    use std::time::Duration;

    #[derive(Debug)]
    struct Builder {
        options: SyncOptions,
    }

    #[allow(unreachable_pub)] // the macro writes the public setters of a public builder
    impl Builder {
        sync_option_setters!(store: "the store", revision: "the revision");
    }

    #[test]
    fn every_setter_sets_its_option() {
        let ms = Duration::from_millis;
        let b = Builder {
            options: SyncOptions::default(),
        }
        .start_timeout(ms(1))
        .timeout(ms(2))
        .refresh_interval(ms(3))
        .backoff(ms(4), ms(5))
        .snapshot_path("snapshot.json")
        .bootstrap_file("flags.yaml");
        let o = &b.options;
        assert_eq!(
            (o.start_timeout, o.timeout, o.refresh_interval),
            (ms(1), ms(2), ms(3))
        );
        assert_eq!((o.backoff_initial, o.backoff_max), (ms(4), ms(5)));
        assert_eq!(o.snapshot_path, Some(PathBuf::from("snapshot.json")));
        assert_eq!(o.bootstrap_file, Some(PathBuf::from("flags.yaml")));

        let b = b.options(SyncOptions::default());
        assert_eq!(
            b.options.start_timeout,
            SyncOptions::default().start_timeout
        );
        assert_eq!(b.options.snapshot_path, None);
    }
}
