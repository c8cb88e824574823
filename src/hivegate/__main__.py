from hivegate.cli.main import main

main()
