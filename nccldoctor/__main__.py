from nccldoctor.cli import main

main()
