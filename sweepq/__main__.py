from sweepq.fastcli import main

main()
