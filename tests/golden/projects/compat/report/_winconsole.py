import colorama

colorama.just_fix_windows_console()
