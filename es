/dev/fd/3: line 37: charrnn: command not found
/dev/fd/3: line 37: charrnn: command not found
/dev/fd/3: line 37: charrnn: command not found
/dev/fd/3: line 37: charrnn: command not found
/dev/fd/3: line 37: charrnn: command not found
/dev/fd/3: line 37: charrnn: command not found
