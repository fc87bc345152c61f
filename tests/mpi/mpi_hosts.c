/* One line per MPI rank: its rank, the world size, the host it runs on, and the
   sum of all ranks (an MPI_Allreduce, so the ranks did talk to each other). */
#include <mpi.h>
#include <stdio.h>

int main(int argc, char **argv) {
    int rank, size, length, sum;
    char host[MPI_MAX_PROCESSOR_NAME];
    MPI_Init(&argc, &argv);
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    MPI_Get_processor_name(host, &length);
    MPI_Allreduce(&rank, &sum, 1, MPI_INT, MPI_SUM, MPI_COMM_WORLD);
    printf("rank %d size %d host %s sum %d\n", rank, size, host, sum);
    MPI_Finalize();
    return 0;
}
