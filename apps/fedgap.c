/* fedgap command-line entry point (placeholder while the engine lands). */
#include <stdio.h>
int main(void) { puts("fedgap"); return 0; }
