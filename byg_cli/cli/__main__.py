from byg_cli.cli import main

main()
