from podku.cli.main import main

main()
