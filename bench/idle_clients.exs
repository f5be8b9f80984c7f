# Opens idle h2c connections for `mix h2flow.bench` (section memory), from an OS process of its
# own so that the client sockets do not count in the server VM's memory. Needs no h2flow code:
#
#     elixir bench/idle_clients.exs PORT N
#
# Each connection sends the client preface and an empty SETTINGS, reads the server's SETTINGS
# and acknowledges it, then stays quiet. Prints "ready" once all N are set up, and exits when
# its standard input closes (the task closes the port).

[port, n] = Enum.map(System.argv(), &String.to_integer/1)

preface = ["PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", <<0::24, 4::8, 0::8, 0::32>>]
settings_ack = <<0::24, 4::8, 1::8, 0::32>>
opts = [:binary, active: false, packet: :raw, nodelay: true]

sockets =
  for _ <- 1..n do
    {:ok, socket} = :gen_tcp.connect({127, 0, 0, 1}, port, opts, 10_000)
    :ok = :gen_tcp.send(socket, preface)
    socket
  end

# The server's preface begins with its SETTINGS frame (RFC 9113 3.4); what follows it stays
# unread in the socket.
for socket <- sockets do
  {:ok, <<length::24, 4::8, 0::8, _::32>>} = :gen_tcp.recv(socket, 9, 10_000)
  if length > 0, do: {:ok, _} = :gen_tcp.recv(socket, length, 10_000)
  :ok = :gen_tcp.send(socket, settings_ack)
end

IO.puts("ready")
_ = IO.read(:stdio, :line)
