import KappaCLI
KappaCommand.main()
