import KappaCLI

await KappaCommand.runMain()
