from securefiles.cli.main import main

main()
