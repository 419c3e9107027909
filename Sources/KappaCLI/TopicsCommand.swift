import ArgumentParser
import KappaCore
import KappaFormat
import KappaJSON
import KappaLog
import KappaStreams

struct TopicsCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "topics", abstract: "Create, list and describe topics.",
        subcommands: [Create.self, List.self, Describe.self, Delete.self])

    struct Create: ParsableCommand {
        static let configuration = CommandConfiguration(commandName: "create", abstract: "Create a topic.")
        @OptionGroup var data: DataOptions
        @Argument(help: "Topic name: letters, digits, '.', '_', '-'.") var name: String
        @Option(help: "Number of partitions.") var partitions: Int32 = 1
        @Option(help: "Delete segments whose newest record is older than this (e.g. 7d). Default: keep forever.") var retention: String?
        @Option(name: .customLong("retention-bytes"), help: "Delete the oldest segments while a partition is above this size.") var retentionBytes: Int64?
        @Option(help: "Batch compression: lz4 or none.") var compression: String = "lz4"
        @Option(name: .customLong("segment-bytes"), help: "Roll segments at this size.") var segmentBytes: Int64 = TopicConfig.segmentBytesDefault
        @Option(name: .customLong("key-field"), help: "The field records are keyed (partitioned) by: produce's default, and what jobs assume.") var keyField: String = "user_id"

        func validate() throws {
            if let retention, Duration.parseMillis(retention) == nil {
                throw ValidationError("--retention '\(retention)' is not a duration like 500ms, 30s, 10m, 1h, 7d")
            }
            guard CompressionCodec(name: compression) != nil else {
                throw ValidationError("--compression must be lz4 or none")
            }
        }

        func run() throws {
            try runReportingErrors {
                let config = TopicConfig(partitions: partitions, compression: CompressionCodec(name: compression)!,
                                         retentionMillis: retention.flatMap(Duration.parseMillis), retentionBytes: retentionBytes,
                                         segmentBytes: segmentBytes, keyField: keyField)
                try DataDirectory(root: data.path).createTopic(name, config: config)
                Stderr.line("created topic \(name) with \(partitions) partition\(partitions == 1 ? "" : "s") (\(compression))")
            }
        }
    }

    struct List: ParsableCommand {
        static let configuration = CommandConfiguration(commandName: "list", abstract: "List topics, one JSON object per line.")
        @OptionGroup var data: DataOptions

        func run() throws {
            try runReportingErrors {
                let dir = DataDirectory(root: data.path)
                let out = StdoutWriter()
                for name in try dir.listTopics() {
                    let c = try dir.topicConfig(name)
                    out.line(KappaStreams.Describe.topic(name, c))
                }
                out.flush()
            }
        }
    }

    struct Describe: ParsableCommand {
        static let configuration = CommandConfiguration(commandName: "describe", abstract: "Per partition: start and end offsets, bytes on disk.")
        @OptionGroup var data: DataOptions
        @Argument var name: String

        func run() throws {
            try runReportingErrors {
                let dir = DataDirectory(root: data.path)
                let c = try dir.topicConfig(name)
                let out = StdoutWriter()
                for p in 0..<c.partitions {
                    let s = try PartitionStatus.read(dir, TopicPartition(name, p))
                    out.line(KappaStreams.Describe.partition(name, p, s, c))
                }
                out.flush()
            }
        }
    }

    struct Delete: ParsableCommand {
        static let configuration = CommandConfiguration(commandName: "delete", abstract: "Delete a topic and all its records (not a job's own topics: see 'kappa jobs drop').")
        @OptionGroup var data: DataOptions
        @Argument var name: String

        func run() throws {
            try runReportingErrors {
                let dir = DataDirectory(root: data.path)
                guard dir.topicExists(name) else { throw KappaError(.notFound, "topic '\(name)' does not exist") }
                if let job = try JobRegistry(directory: dir).owningJob(ofTopic: name) {
                    throw KappaError(.conflict, "topic '\(name)' belongs to job '\(job)'; drop its version with 'kappa jobs drop'")
                }
                try dir.deleteTopic(name)
                Stderr.line("deleted topic \(name)")
            }
        }
    }
}
