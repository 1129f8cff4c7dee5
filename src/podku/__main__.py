from podku.cli import main

main()
