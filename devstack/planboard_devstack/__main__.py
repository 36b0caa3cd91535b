from planboard_devstack.cli import main

main()
