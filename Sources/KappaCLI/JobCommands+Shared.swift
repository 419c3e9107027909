#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import KappaCore
import KappaLog
import KappaStreams

/// Loading job files and choosing versions: shared by process, replay and demo.
enum JobFiles {
    static func load(_ path: String) throws(KappaError) -> JobDefinition {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw KappaError.io("open", path: path, errno: errno) }
        close(fd)
        let bytes = try File(path: path, mode: .readOnly).readAll(limit: 1 << 20)
        return try JobFile.parse(String(decoding: bytes, as: UTF8.self), path: path)
    }

    /// The version `process` runs: the current one; else a non-current latest version
    /// with this very definition (made current); else a new version from offset 0.
    static func liveVersion(_ def: JobDefinition, registry: JobRegistry, now: Int64) throws(KappaError) -> (Int, JobDefinition) {
        try registry.update(def.name) { (record) throws(KappaError) -> (Int, JobDefinition) in
            var r = record ?? JobRecord(name: def.name, current: nil, versions: [])
            defer { record = r }
            if let c = r.current, let v = r.version(c) {
                if v.definition != def {
                    Stderr.line("kappa: \(def.name): the job file differs from the current version v\(c); running v\(c) as it was defined. Run 'kappa replay' to compute the new definition over all of history.")
                }
                return (c, v.definition)
            }
            if let latest = r.latest, latest.definition == def {
                r.current = latest.version
                return (latest.version, def)
            }
            let n = (r.latest?.version ?? 0) + 1
            r.versions.append(.init(version: n, definition: def, createdMillis: now / 1_000_000, caughtUpMillis: nil))
            r.current = n
            return (n, def)
        }
    }

    /// The version `replay` computes: a new one, or an unfinished replay of the same
    /// definition (resumed from its checkpoints).
    static func replayVersion(_ def: JobDefinition, registry: JobRegistry, now: Int64) throws(KappaError) -> (version: Int, resumed: Bool) {
        try registry.update(def.name) { (record) throws(KappaError) -> (Int, Bool) in
            var r = record ?? JobRecord(name: def.name, current: nil, versions: [])
            defer { record = r }
            if let latest = r.latest, latest.version != r.current, latest.definition == def, latest.caughtUpMillis == nil {
                return (latest.version, true)  // an interrupted replay of this file: resume it
            }
            let n = (r.latest?.version ?? 0) + 1
            r.versions.append(.init(version: n, definition: def, createdMillis: now / 1_000_000, caughtUpMillis: nil))
            return (n, false)
        }
    }

    static func memberId() -> String { ConsumeSession.memberId() }
}
