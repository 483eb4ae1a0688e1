#include <stdio.h>
#include <sys/wait.h>
#include <unistd.h>
int main(void) {
    pid_t p = fork();
    if (p == 0) return 3;
    int st;
    waitpid(p, &st, 0);
    return 0;
}
