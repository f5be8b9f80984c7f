defmodule H2Flow.Transport.TCP do
  @moduledoc false
  # H2Flow.Transport over :gen_tcp (h2c).

  @behaviour H2Flow.Transport

  @impl true
  def listen(port, opts), do: :gen_tcp.listen(port, [:binary, {:packet, :raw} | opts])
  @impl true
  def connect(host, port, opts, timeout),
    do: :gen_tcp.connect(host, port, [:binary, {:packet, :raw}, {:active, false} | opts], timeout)

  @impl true
  def accept(socket), do: :gen_tcp.accept(socket)
  @impl true
  def handshake(socket, _timeout), do: {:ok, socket}
  @impl true
  def controlling_process(socket, pid), do: :gen_tcp.controlling_process(socket, pid)
  @impl true
  def peername(socket), do: :inet.peername(socket)
  @impl true
  def sockname(socket), do: :inet.sockname(socket)
  @impl true
  def negotiated_protocol(_socket), do: :none
  @impl true
  def setopts(socket, opts), do: :inet.setopts(socket, opts)
  @impl true
  def recv(socket, length, timeout), do: :gen_tcp.recv(socket, length, timeout)
  @impl true
  def send(socket, data), do: :gen_tcp.send(socket, data)
  @impl true
  def shutdown_write(socket), do: :gen_tcp.shutdown(socket, :write)
  @impl true
  def close(socket), do: :gen_tcp.close(socket)
  @impl true
  def peer_cert(_socket), do: {:error, :no_peercert}
  @impl true
  def connection_information(_socket), do: {:error, :not_tls}
end
