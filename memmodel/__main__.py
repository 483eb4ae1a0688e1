from memmodel.cli import main

main()
