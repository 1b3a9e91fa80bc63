/* Links liblediflow.a (no shared library at run time) and samples one image. */
#include <stdio.h>
#include <stdlib.h>

#include "lediflow.h"

int main(int argc, char **argv) {
    if (argc != 2) return 2;
    LdfModel *m = NULL;
    if (ldf_model_load(argv[1], LDF_DEVICE_CPU, &m) != LDF_OK) {
        fprintf(stderr, "load: %s\n", ldf_last_error());
        return 1;
    }
    LdfModelInfo info = {.struct_size = sizeof info};
    LdfStatus s = ldf_model_info(m, &info);
    unsigned char *px = malloc(info.image_bytes);
    if (s == LDF_OK) s = ldf_sample(m, 1, NULL, px, info.image_bytes);
    printf("static link: lediflow %s, sample %s\n", ldf_version(), ldf_status_str(s));
    free(px);
    ldf_model_free(m);
    return s == LDF_OK ? 0 : 1;
}
