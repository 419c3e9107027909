import ArgumentParser
import KappaCore

struct DemoCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "demo", abstract: "Generate Rebu data, produce it into rides, tickets and app_events, and report.")
    @OptionGroup var data: DataOptions
    func run() throws {}
}
