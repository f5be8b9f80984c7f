# Opens idle h2c connections for `mix h2flow.bench` (section memory), from an OS process of its
# own so that the client sockets do not count in the server VM's memory. Needs no h2flow code:
#
#     elixir bench/idle_clients.exs PORT N
#
# Each connection sends the client preface and an empty SETTINGS, acknowledges the server's
# SETTINGS, waits for the answer to a PING, then stays quiet. Prints "ready" once all N are set up, and exits when
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

# Acknowledge the server's SETTINGS and send a PING; the PING's ACK (RFC 9113 6.7) says the
# server has processed everything this client sent, so the connection is idle from then on.
# Waiting this way, rather than polling the server's stats, keeps the measurement from
# touching the connections.
ping = <<8::24, 6::8, 0::8, 0::32, "h2flowid">>

for socket <- sockets do
  :ok = :gen_tcp.send(socket, [settings_ack, ping])
end

read_frame = fn socket ->
  {:ok, <<length::24, type::8, flags::8, _::32>>} = :gen_tcp.recv(socket, 9, 10_000)
  if length > 0, do: {:ok, _} = :gen_tcp.recv(socket, length, 10_000)
  {type, flags}
end

for socket <- sockets do
  Stream.repeatedly(fn -> read_frame.(socket) end) |> Enum.find(&(&1 == {6, 1}))
end

IO.puts("ready")
_ = IO.read(:stdio, :line)
