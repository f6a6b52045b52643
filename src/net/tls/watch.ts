/**
 * Tells when certificate files may have changed. Directories are watched, not files: Kubernetes
 * updates a mounted Secret by writing a new timestamped directory and atomically renaming a `..data`
 * symlink over the old one, and certbot swaps symlinks in `live/`; a watch on the file itself would
 * stay on the old inode and never fire. fs.watch can also miss events (network filesystems, inotify
 * limits), so a poll runs as well. Callers compare contents, so spurious triggers are harmless.
 */
import { watch, type FSWatcher } from "node:fs";
import { dirname, resolve } from "node:path";

export interface ChangeWatcherOptions {
  readonly files: readonly string[];
  readonly pollMs: number;
  /** Coalesces the burst of events one update produces (several files, rename + create). */
  readonly debounceMs: number;
  readonly useFsWatch: boolean;
  readonly onChange: () => void;
  readonly onWatchError: (err: Error, dir: string) => void;
}

export interface ChangeWatcher {
  close(): void;
}

export function watchForChanges(opts: ChangeWatcherOptions): ChangeWatcher {
  let debounce: NodeJS.Timeout | undefined;
  const trigger = () => {
    clearTimeout(debounce);
    // unref: watching certificates must never be what keeps the process alive.
    debounce = setTimeout(opts.onChange, opts.debounceMs).unref();
  };

  const watchers: FSWatcher[] = [];
  if (opts.useFsWatch) {
    for (const dir of new Set(opts.files.map((f) => dirname(resolve(f))))) {
      try {
        const w = watch(dir, { persistent: false }, trigger);
        // e.g. the directory was removed: polling still covers it.
        w.on("error", (err) => {
          opts.onWatchError(err, dir);
          w.close();
        });
        watchers.push(w);
      } catch (err) {
        opts.onWatchError(err as Error, dir);
      }
    }
  }
  const poll = setInterval(opts.onChange, Math.max(1, opts.pollMs)).unref();

  return {
    close() {
      clearTimeout(debounce);
      clearInterval(poll);
      for (const w of watchers) w.close();
    },
  };
}
